//! A bounded single-consumer packet queue that allocates nothing until a
//! packet waits, and gives its buffer back once it is drained.
//!
//! It replaces `tokio::sync::mpsc` for a socket's packet channel, with the
//! subset of its API that the crate uses and the same error types. Tokio's
//! channel allocates its first block of 32 slots when it is made, whatever
//! its capacity: about 5 KiB per socket for `PacketBuf`, held for the life of
//! a connection that mostly waits. Here the packets wait in a `VecDeque` that
//! is empty (unallocated) while nothing is queued and is freed again when a
//! burst has been drained.
//!
//! Beside the queue, outside its order and its bound, one slot holds the latest
//! volatile packet: each one sent replaces the one before, as the `watch`
//! channel it replaces did, without that channel's allocation per socket.
use std::{
    collections::VecDeque,
    fmt,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use tokio::sync::{
    Notify,
    mpsc::error::{SendError, TryRecvError, TrySendError},
};

/// A drained queue keeps a buffer of this many slots, so that a connection that
/// receives one packet at a time does not allocate each time.
const KEEP_SLOTS: usize = 1;

struct State<T> {
    buf: VecDeque<T>,
    /// Slots promised to [`Permit`]s that have not sent yet.
    reserved: usize,
    capacity: usize,
    /// The receiver was closed or dropped: no more packets are accepted.
    rx_closed: bool,
    /// The sender was dropped: the receiver ends once the queue is drained.
    tx_dropped: bool,
    rx_waker: Option<Waker>,
    /// The latest value of [`Sender::replace_latest`], not yet taken.
    latest: Option<T>,
    /// An async [`Sender::send`] waits for room.
    tx_waiting: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Notified when the receiver closes, for [`Sender::closed`].
    closed: Notify,
    /// Notified when room is made while a sender waits for it.
    room: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while the lock is held cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a queue that holds at most `capacity` packets.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "the queue capacity must be at least 1");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: VecDeque::new(),
            reserved: 0,
            capacity,
            rx_closed: false,
            tx_dropped: false,
            rx_waker: None,
            latest: None,
            tx_waiting: false,
        }),
        closed: Notify::new(),
        room: Notify::new(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// The sending half; see [`channel`].
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The receiving half; see [`channel`].
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// One reserved slot of the queue; see [`Sender::try_reserve`].
pub(crate) struct Permit<'a, T> {
    shared: &'a Shared<T>,
    used: bool,
}

fn push<T>(mut state: MutexGuard<'_, State<T>>, value: T) {
    state.buf.push_back(value);
    let waker = state.rx_waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Sender<T> {
    /// Queues `value` if there is room.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let state = self.0.lock();
        if state.rx_closed {
            return Err(TrySendError::Closed(value));
        }
        if state.buf.len() + state.reserved >= state.capacity {
            return Err(TrySendError::Full(value));
        }
        push(state, value);
        Ok(())
    }

    /// Queues `value`, waiting for room.
    pub(crate) async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.0.lock();
                if state.rx_closed {
                    return Err(SendError(value.take().expect("sent once")));
                }
                if state.buf.len() + state.reserved < state.capacity {
                    push(state, value.take().expect("sent once"));
                    return Ok(());
                }
                state.tx_waiting = true;
            }
            room.await;
        }
    }

    /// Reserves a slot, to be filled by [`Permit::send`].
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        let mut state = self.0.lock();
        if state.rx_closed {
            return Err(TrySendError::Closed(()));
        }
        if state.buf.len() + state.reserved >= state.capacity {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(Permit {
            shared: &self.0,
            used: false,
        })
    }

    /// Puts `value` in the latest-value slot, replacing what was there and not
    /// yet taken, and wakes the receiver; false once the receiver is closed.
    pub(crate) fn replace_latest(&self, value: T) -> bool {
        let mut state = self.0.lock();
        if state.rx_closed {
            return false;
        }
        state.latest = Some(value);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Whether the receiver was closed or dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().rx_closed
    }

    /// Waits until the receiver is closed or dropped.
    pub(crate) async fn closed(&self) {
        loop {
            let closed = self.0.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.is_closed() {
                return;
            }
            closed.await;
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.tx_dropped = true;
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Permit<'_, T> {
    /// Fills the reserved slot. The value is dropped if the receiver has closed since.
    pub(crate) fn send(mut self, value: T) {
        self.used = true;
        let mut state = self.shared.lock();
        state.reserved -= 1;
        if state.rx_closed {
            return;
        }
        push(state, value);
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        if !self.used {
            let mut state = self.shared.lock();
            state.reserved -= 1;
            let waiting = std::mem::take(&mut state.tx_waiting);
            drop(state);
            if waiting {
                self.shared.room.notify_waiters();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// The next packet; `Ready(None)` once the queue is closed and drained.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.lock();
        match self.take(&mut state) {
            Ok(value) => Poll::Ready(Some(value)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                match &state.rx_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.rx_waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the next packet; `None` once the queue is closed and drained.
    #[cfg_attr(not(any(test, feature = "__test_harness")), allow(dead_code))]
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next packet if one waits.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.0.lock();
        self.take(&mut state)
    }

    fn take(&self, state: &mut State<T>) -> Result<T, TryRecvError> {
        match state.buf.pop_front() {
            Some(value) => {
                if state.buf.is_empty() && state.buf.capacity() > KEEP_SLOTS {
                    // The burst is over: give its buffer back.
                    state.buf.shrink_to(KEEP_SLOTS);
                }
                if std::mem::take(&mut state.tx_waiting) {
                    self.0.room.notify_waiters();
                }
                Ok(value)
            }
            None if state.rx_closed || state.tx_dropped => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The value of the latest-value slot, if one was put there since the last take.
    pub(crate) fn take_latest(&mut self) -> Option<T> {
        self.0.lock().latest.take()
    }

    /// Refuses further packets; those already queued can still be received.
    pub(crate) fn close(&mut self) {
        let mut state = self.0.lock();
        state.rx_closed = true;
        let waiting = std::mem::take(&mut state.tx_waiting);
        drop(state);
        self.0.closed.notify_waiters();
        if waiting {
            self.0.room.notify_waiters();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        let mut state = self.0.lock();
        let buf = std::mem::take(&mut state.buf);
        let latest = state.latest.take();
        drop(state);
        drop((buf, latest));
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.lock();
        f.debug_struct("Receiver")
            .field("queued", &state.buf.len())
            .field("closed", &state.rx_closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_and_ordered() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        permit.send(2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[tokio::test]
    async fn unused_permit_gives_its_slot_back() {
        let (tx, _rx) = channel::<u8>(1);
        drop(tx.try_reserve().unwrap());
        assert!(tx.try_reserve().is_ok());
    }

    #[tokio::test]
    async fn nothing_allocated_until_a_packet_waits_and_freed_after_a_burst() {
        let (tx, mut rx) = channel(64);
        assert_eq!(rx.0.lock().buf.capacity(), 0);
        for i in 0..64 {
            tx.try_send(i).unwrap();
        }
        assert!(rx.0.lock().buf.capacity() >= 64);
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.0.lock().buf.capacity(), KEEP_SLOTS);
    }

    #[tokio::test]
    async fn close_refuses_new_packets_and_drains_the_rest() {
        let (tx, mut rx) = channel(4);
        tx.try_send(1).unwrap();
        rx.close();
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));
        tx.closed().await;
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn send_waits_for_room() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let sender = async { tx.send(2).await.unwrap() };
        let receiver = async {
            tokio::task::yield_now().await;
            (rx.recv().await, rx.recv().await)
        };
        let ((), got) = tokio::join!(sender, receiver);
        assert_eq!(got, (Some(1), Some(2)));
    }

    #[tokio::test]
    async fn receiver_wakes_on_send_and_ends_when_the_sender_is_dropped() {
        let (tx, mut rx) = channel(4);
        let reader = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        drop(tx);
        assert_eq!(reader.await.unwrap(), (Some(7), None));
    }

    #[tokio::test]
    async fn the_latest_value_replaces_the_one_before_and_wakes_the_receiver() {
        let (tx, mut rx) = channel::<u32>(4);
        assert!(tx.replace_latest(1));
        assert!(tx.replace_latest(2));
        assert_eq!(rx.take_latest(), Some(2));
        assert_eq!(rx.take_latest(), None, "a value is taken once");

        let waiting = tokio::spawn(async move {
            // Nothing is queued: the receiver waits, and a latest value wakes it.
            poll_fn(|cx| match rx.poll_recv(cx) {
                Poll::Pending => match rx.take_latest() {
                    Some(v) => Poll::Ready(Some(v)),
                    None => Poll::Pending,
                },
                ready => ready,
            })
            .await
        });
        tokio::task::yield_now().await;
        assert!(tx.replace_latest(3));
        assert_eq!(waiting.await.unwrap(), Some(3));
    }

    #[test]
    fn a_closed_receiver_refuses_the_latest_value() {
        let (tx, mut rx) = channel::<u32>(1);
        rx.close();
        assert!(!tx.replace_latest(1));
        assert_eq!(rx.take_latest(), None);
    }
}
