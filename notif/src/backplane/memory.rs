//! An in-process backplane: several hubs in one process, for tests and examples.
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};

use super::{Backplane, BackplaneEvent};

/// A bus shared by the hubs of one process; [`MemoryBackplane::node`] gives each hub its end.
#[derive(Clone, Default)]
pub struct MemoryBackplane {
    nodes: Arc<Mutex<Vec<Arc<MemoryNode>>>>,
}

impl MemoryBackplane {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new node on this bus, to give to one hub.
    pub fn node(&self) -> Arc<dyn Backplane> {
        let node = Arc::new(MemoryNode {
            bus: self.clone(),
            state: Mutex::default(),
        });
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(node.clone());
        node
    }
}

#[derive(Default)]
struct NodeState {
    events: Option<mpsc::UnboundedSender<BackplaneEvent>>,
    channels: HashSet<String>,
}

struct MemoryNode {
    bus: MemoryBackplane,
    state: Mutex<NodeState>,
}

impl MemoryNode {
    fn state(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backplane for MemoryNode {
    fn start(&self, events: mpsc::UnboundedSender<BackplaneEvent>) {
        let _ = events.send(BackplaneEvent::Up);
        self.state().events = Some(events);
    }

    fn publish(&self, channel: String, payload: Vec<u8>) {
        // The bus stays locked while a message goes out: every node sees every publish in the
        // same order, as Redis orders them (a tab moving between nodes relies on it).
        let nodes = self.bus.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for node in nodes.iter() {
            let state = node.state();
            if let (true, Some(events)) = (state.channels.contains(&channel), &state.events) {
                let _ = events.send(BackplaneEvent::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                });
            }
        }
    }

    fn subscribe(&self, channel: String) -> oneshot::Receiver<()> {
        self.state().channels.insert(channel);
        let (done, confirmed) = oneshot::channel();
        let _ = done.send(());
        confirmed
    }

    fn unsubscribe(&self, channel: String) {
        self.state().channels.remove(&channel);
    }
}
