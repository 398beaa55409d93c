//! notif's demo application: sign in with a name, chat in rooms that update live, a bell that
//! counts new messages in followed rooms, mentions highlighted per user, muted rooms silent.
//!
//! Shared by the server (`ssr`) and the browser (`hydrate`): the topic, the server functions
//! and the components are the same code on both sides.
#![allow(missing_docs)]

pub mod api;
pub mod model;
pub mod topics;
mod ui;

#[cfg(feature = "ssr")]
pub mod server;

pub use ui::{shell, App};
