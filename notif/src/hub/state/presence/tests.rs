use super::*;
use crate::hub::queue;

type Frames = queue::Receiver<crate::hub::state::Outgoing>;

fn key() -> KeyId {
    KeyId::from_json("lobby", "\"hall\"")
}

fn appearance(user: &str) -> Appearance {
    Appearance {
        order: format!("\"{user}\"").into(),
        public: Some(format!("\"{user}!\"").into()),
    }
}

/// A tab of `user` listening on the key, and what it receives.
fn listening(state: &mut State<String>, user: &str) -> (TabId, Frames) {
    let (tx, rx) = queue::channel(64);
    let tab = state.open(user.to_owned(), None, tx, 64);
    assert_eq!(state.listen(tab, &user.to_owned(), key(), 8), Ok(true));
    state.joined(tab, &key(), appearance(user));
    (tab, rx)
}

/// The presence changes queued for a tab since last read, as `join x` / `leave x`.
fn changes(frames: &mut Frames) -> Vec<String> {
    std::iter::from_fn(|| frames.try_recv().ok())
        .filter_map(|frame| match frame {
            crate::hub::state::Outgoing::Notif { data, .. } => {
                let raw: crate::wire::RawPresence = serde_json::from_str(&data).ok()?;
                Some(match raw.presence {
                    crate::wire::PresenceChange::Join(p) => format!("join {}", p.as_str()?),
                    crate::wire::PresenceChange::Leave(p) => format!("leave {}", p.as_str()?),
                    crate::wire::PresenceChange::Present(list) => format!("present {}", list.len()),
                })
            }
            _ => None,
        })
        .collect()
}

fn from(node: NodeId) -> Origin {
    Origin { node, seq: 1 }
}

/// A crowd whose queues are full: each tab cut off for lagging leaves, and its `leave`
/// finds the others full too. The cascade runs in a loop, not one call deeper per tab (10,000
/// distinct identities overflowed a worker's stack before).
#[test]
fn a_crowd_cut_off_in_a_cascade_does_not_overflow_the_stack() {
    const CROWD: usize = 4_000;
    let mut state: State<String> = State::default();
    let mut crowd = Vec::new();
    for i in 0..CROWD {
        let user = format!("u{i:05}");
        let (tx, rx) = queue::channel(1);
        let tab = state.open(user.clone(), None, tx, 4);
        // Present before anyone listens: no frames yet.
        state.joined(tab, &key(), appearance(&user));
        crowd.push((tab, user, rx));
    }
    for (tab, user, _) in &crowd {
        assert_eq!(state.listen(*tab, user, key(), 8), Ok(true));
    }
    // One more joins: every queue holds one frame, full.
    let (tx, _late) = queue::channel(1);
    let late = state.open("late".to_owned(), None, tx, 4);
    assert_eq!(state.listen(late, &"late".to_owned(), key(), 8), Ok(true));
    state.joined(late, &key(), appearance("late"));
    assert_eq!(state.presence_tally, (CROWD as u64, 0));
    // A frame more for the first: it is cut off, its leave cuts off the next, and so on.
    let data: Arc<str> = "{}".into();
    let mut wakes = Vec::new();
    state.deliver(crowd[0].0, None, &data, Origin::HERE, Stamp::now(), &mut wakes);
    assert_eq!(
        state.tab_count(),
        0,
        "the whole crowd was cut off, the late tab too"
    );
    assert!(state.identities_on(&key()).is_empty() && state.presence_here_on(&key()).is_none());
    // Counted: all but the first (its notifier counts it) and the late tab.
    assert_eq!(state.presence_tally.1, CROWD as u64);
}

/// An identity on two nodes is one presence: it joins when the first has it, and leaves
/// only when neither does, whatever the order; a node's snapshot replaces what it said; a
/// node gone takes its identities with it.
#[test]
fn identities_here_and_elsewhere_join_and_leave_once() {
    let (a, b) = (NodeId::random(), NodeId::random());
    let mut state: State<String> = State::default();
    let (_, mut ann) = listening(&mut state, "ann");
    state.heard_joined(&key(), a, "\"bob\"".into(), "\"bob!\"".into(), from(a));
    state.heard_joined(&key(), b, "\"bob\"".into(), "\"bob!\"".into(), from(b));
    assert_eq!(changes(&mut ann), ["join bob!"], "once for two nodes");
    state.heard_left(&key(), a, "\"bob\"", from(a));
    assert!(changes(&mut ann).is_empty(), "still on node b");

    // Bob's tab here too: no join (shown already); node b lets go: no leave (here).
    let (_, mut bob) = listening(&mut state, "bob");
    state.heard_left(&key(), b, "\"bob\"", from(b));
    assert!(changes(&mut ann).is_empty());
    assert!(changes(&mut bob).is_empty());

    // Node a's snapshot: cy and dee; then one without dee; then node a is gone.
    let members = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (format!("\"{n}\""), format!("\"{n}!\"")))
            .collect()
    };
    state.heard_snapshot(&key(), a, members(&["cy", "dee"]), from(a));
    assert_eq!(changes(&mut ann), ["join cy!", "join dee!"]);
    state.heard_snapshot(&key(), a, members(&["cy"]), from(a));
    assert_eq!(changes(&mut bob), ["join cy!", "join dee!", "leave dee!"]);
    assert_eq!(changes(&mut ann), ["leave dee!"]);
    assert_eq!(state.node_gone(a), 1, "node a still showed cy");
    assert_eq!(changes(&mut ann), ["leave cy!"]);
    assert_eq!(changes(&mut bob), ["leave cy!"]);
    assert_eq!(state.node_gone(a), 0, "nobody left: a drained node goes quietly");

    // Bob's tab goes: he is on no node, so ann sees him leave.
    let bobs: Vec<TabId> = state.tabs_of(&"bob".to_owned());
    state.end(bobs[0], crate::ByeReason::Disconnected);
    assert_eq!(changes(&mut ann), ["leave bob!"]);

    // Unknown keys are ignored: no presence here, nothing kept.
    let other = KeyId::from_json("lobby", "\"elsewhere\"");
    state.heard_joined(&other, a, "\"eve\"".into(), "\"eve!\"".into(), from(a));
    assert!(state.presence_here_on(&other).is_none());
}
