//! A private `redis-server` for one test: on a free loopback port, keeping
//! nothing on disk, killed when dropped. The store's Redis tests use it, and
//! so do the services' in-process app tests (which include this file by path).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// A running `redis-server`, killed (and waited for) when dropped.
pub(crate) struct Redis {
    child: Child,
    /// `redis://127.0.0.1:<port>`.
    pub(crate) url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a `redis-server` and returns once it accepts connections (it says
/// so on its standard output).
pub(crate) fn start_redis() -> Result<Redis> {
    // Another test may take the same free port first: then our server exits and we try again.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .context("redis-server must be installed (the test command installs it)")?;
        let output = child.stdout.take().context("redis-server's output")?;
        let mut lines = BufReader::new(output).lines();
        let ready = lines
            .by_ref()
            .map_while(std::io::Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        if ready {
            // Read what it writes from now on, so that a full pipe never stops it.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(Redis {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("could not start redis-server")
}
