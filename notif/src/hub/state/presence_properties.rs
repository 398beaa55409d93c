//! Property: whatever happens on a key with presence (tabs listening and leaving, other nodes'
//! joins, leaves and snapshots, nodes gone), every tab listening here, replaying the presence
//! frames it received, sees exactly who this node knows to be on the key.
use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::{Appearance, Outgoing, State};
use crate::{
    hub::{
        cluster::{NodeId, Origin},
        key_id::KeyId,
        queue,
    },
    wire::{PresenceChange, RawPresence},
    TabId,
};

const TABS: usize = 6;
const NODES: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Listen(usize),
    Unlisten(usize),
    Joined(usize, u8),
    Left(usize, u8),
    Snapshot(usize, Vec<u8>),
    Gone(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..TABS).prop_map(Op::Listen),
        (0..TABS).prop_map(Op::Unlisten),
        (0..NODES, 0u8..5).prop_map(|(n, i)| Op::Joined(n, i)),
        (0..NODES, 0u8..5).prop_map(|(n, i)| Op::Left(n, i)),
        (0..NODES, prop::collection::vec(0u8..5, 0..4)).prop_map(|(n, is)| Op::Snapshot(n, is)),
        (0..NODES).prop_map(Op::Gone),
    ]
}

fn key() -> KeyId {
    KeyId::from_json("lobby", "\"hall\"")
}

/// Identity `i`: tabs 0..6 belong to users 0..3 (two tabs each); other nodes name users 0..5.
fn user(i: usize) -> String {
    format!("u{i}")
}

fn json(user: &str) -> String {
    format!("\"{user}\"")
}

fn public(user: &str) -> String {
    format!("\"{user} shown\"")
}

/// What a tab's frames say is on the key.
fn replay(frames: &mut queue::Receiver<Outgoing>, view: &mut Vec<String>) {
    while let Ok(frame) = frames.try_recv() {
        let Outgoing::Notif { data, .. } = frame else {
            continue;
        };
        let raw: RawPresence = serde_json::from_str(&data).expect("only presence frames here");
        let name = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        match raw.presence {
            PresenceChange::Present(list) => *view = list.into_iter().map(name).collect(),
            PresenceChange::Join(who) => view.push(name(who)),
            PresenceChange::Leave(who) => {
                let who = name(who);
                let at = view
                    .iter()
                    .position(|v| *v == who)
                    .expect("leave of someone not shown");
                view.remove(at);
            }
        }
    }
}

proptest! {
    #[test]
    fn every_listening_tab_sees_who_the_node_knows_is_there(ops in prop::collection::vec(op(), 1..60)) {
        let mut state: State<String> = State::default();
        let nodes: Vec<NodeId> = (0..NODES).map(|_| NodeId::random()).collect();
        let mut tabs: Vec<(TabId, queue::Receiver<Outgoing>)> = (0..TABS)
            .map(|t| {
                let (tx, rx) = queue::channel(4096);
                (state.open(user(t / 2), None, tx, 4096), rx)
            })
            .collect();
        let mut views: Vec<Vec<String>> = vec![Vec::new(); TABS];
        let mut listening = [false; TABS];
        // What other nodes said, kept only while a tab here listens (as the node does).
        let mut remote: HashMap<usize, BTreeSet<String>> = HashMap::new();
        for (seq, op) in ops.into_iter().enumerate() {
            let origin = |n: usize| Origin { node: nodes[n], seq: seq as u64 + 1 };
            match op {
                Op::Listen(t) if !listening[t] => {
                    let (tab, _) = tabs[t];
                    prop_assert_eq!(state.listen(tab, &user(t / 2), key(), 8), Ok(true));
                    let who = user(t / 2);
                    state.joined(tab, &key(), Appearance { order: json(&who).into(), public: Some(public(&who).into()) });
                    state.send_present(tab, &key());
                    listening[t] = true;
                }
                Op::Unlisten(t) if listening[t] => {
                    let (tab, _) = tabs[t];
                    prop_assert_eq!(state.unlisten(tab, &user(t / 2), &key()), Ok(true));
                    listening[t] = false;
                    views[t].clear();
                }
                Op::Joined(n, i) => {
                    let who = user(i as usize);
                    state.heard_joined(&key(), nodes[n], json(&who).into(), public(&who).into(), origin(n));
                    if listening.iter().any(|l| *l) {
                        remote.entry(n).or_default().insert(who);
                    }
                }
                Op::Left(n, i) => {
                    let who = user(i as usize);
                    state.heard_left(&key(), nodes[n], &json(&who), origin(n));
                    remote.entry(n).or_default().remove(&who);
                }
                Op::Snapshot(n, members) => {
                    let members: Vec<String> = members.into_iter().map(|i| user(i as usize)).collect();
                    let wire = members.iter().map(|u| (json(u), public(u))).collect();
                    state.heard_snapshot(&key(), nodes[n], wire, origin(n));
                    if listening.iter().any(|l| *l) {
                        remote.insert(n, members.into_iter().collect());
                    }
                }
                Op::Gone(n) => {
                    state.node_gone(nodes[n]);
                    remote.remove(&n);
                }
                _ => {}
            }
            if !listening.iter().any(|l| *l) {
                remote.clear();
            }
            let mut expected: BTreeSet<String> = (0..TABS).filter(|t| listening[*t]).map(|t| user(t / 2)).collect();
            expected.extend(remote.values().flatten().cloned());
            let expected: Vec<String> = expected.iter().map(|u| format!("{u} shown")).collect();
            for t in 0..TABS {
                replay(&mut tabs[t].1, &mut views[t]);
                if listening[t] {
                    let mut seen = views[t].clone();
                    seen.sort();
                    prop_assert_eq!(&seen, &expected, "tab {} after {:?}", t, seq);
                }
            }
        }
    }
}
