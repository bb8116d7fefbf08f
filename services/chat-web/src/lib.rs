//! chat-web
