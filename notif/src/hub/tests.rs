use super::*;
use crate::{ListenError, SimpleTopic, StreamRefused};

pub(crate) struct Chat;
impl SimpleTopic for Chat {
    const NAME: &'static str = "chat";
    type Key = String;
    type Message = String;
    type Identity = Option<String>;
}

pub(crate) fn hub(config: Config) -> Hub<Option<String>> {
    Hub::new(config, |_| async { None })
}

#[tokio::test]
async fn a_tab_that_does_not_read_is_cut_at_its_queue_cap() {
    let hub = hub(Config {
        queue_capacity: 2,
        ..Config::default()
    });
    let (tab_id, mut rx) = hub.open(None);
    hub.listen::<Chat>(tab_id, &None, &"k".into()).await.unwrap();
    for i in 0..2 {
        assert_eq!(
            hub.notify::<Chat>(&"k".into(), &i.to_string(), Exclude::Nobody)
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(
        hub.notify::<Chat>(&"k".into(), &"overflow".into(), Exclude::Nobody)
            .await
            .unwrap(),
        0
    );
    let metrics = hub.metrics();
    assert_eq!(
        (metrics.tabs, metrics.listens, metrics.lagged, metrics.drops),
        (0, 0, 1, 1)
    );
    // What was queued drains, then the bye says why, then the stream ends: the queue grew
    // past its cap by that one frame only.
    assert!(matches!(rx.recv().await, Some(Outgoing::Notif { seq: 1, .. })));
    assert!(matches!(rx.recv().await, Some(Outgoing::Notif { seq: 2, .. })));
    assert!(matches!(rx.recv().await, Some(Outgoing::Bye(ByeReason::Lagged))));
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn equal_messages_share_one_encoding_across_identities() {
    let hub: Hub<Option<String>> = Hub::new(Config::default(), |_| async { None });
    let mut queues = Vec::new();
    for user in ["a", "b", "c"] {
        let identity = Some(user.to_owned());
        let (tab_id, rx) = hub.open(identity.clone());
        hub.listen::<Chat>(tab_id, &identity, &"k".into()).await.unwrap();
        queues.push(rx);
    }
    hub.notify::<Chat>(&"k".into(), &"same".into(), Exclude::Nobody)
        .await
        .unwrap();
    let mut data = Vec::new();
    for rx in &mut queues {
        match rx.recv().await {
            Some(Outgoing::Notif { data: d, .. }) => data.push(d),
            other => panic!("{other:?}"),
        }
    }
    assert!(Arc::ptr_eq(&data[0], &data[1]) && Arc::ptr_eq(&data[1], &data[2]));
}

#[tokio::test]
async fn disconnected_tabs_get_a_bye_and_lose_their_listens() {
    let hub = hub(Config::default());
    let (tab_id, mut rx) = hub.open(None);
    hub.listen::<Chat>(tab_id, &None, &"k".into()).await.unwrap();
    assert_eq!(hub.disconnect_identity(&None), 1);
    assert!(matches!(
        rx.recv().await,
        Some(Outgoing::Bye(ByeReason::Disconnected))
    ));
    assert!(rx.recv().await.is_none());
    assert_eq!(hub.metrics().listens, 0);
    assert_eq!(
        hub.listen::<Chat>(tab_id, &None, &"k".into()).await,
        Err(ListenError::UnknownTab)
    );
}

#[tokio::test]
async fn after_shutdown_every_tab_has_its_bye_and_no_stream_opens() {
    let hub = hub(Config::default());
    let (_, mut rx) = hub.open(None);
    assert_eq!(hub.admits(&None), Ok(()));
    hub.shutdown();
    assert!(matches!(
        rx.recv().await,
        Some(Outgoing::Bye(ByeReason::Shutdown))
    ));
    assert_eq!(hub.admits(&None), Err(StreamRefused::ShuttingDown));
    // A stream admitted just before is refused as its tab would be registered.
    assert_eq!(hub.open_tab(None, None).err(), Some(StreamRefused::ShuttingDown));
    assert_eq!(hub.metrics().tabs, 0);
}

/// A key's listeners move from a vector to a set as a crowd gathers and back as it leaves;
/// delivery reaches exactly who listens throughout.
#[tokio::test]
async fn a_crowd_on_a_key_gathers_and_leaves_and_only_listeners_get_frames() {
    let hub = hub(Config::default());
    let mut tabs = Vec::new();
    for _ in 0..40 {
        let (tab_id, rx) = hub.open(None);
        hub.listen::<Chat>(tab_id, &None, &"k".into()).await.unwrap();
        tabs.push((tab_id, rx));
    }
    let (key, message) = ("k".to_owned(), "m".to_owned());
    let notify = || hub.notify::<Chat>(&key, &message, Exclude::Nobody);
    assert_eq!(notify().await.unwrap(), 40);
    for (tab_id, _) in &tabs[10..] {
        hub.unlisten::<Chat>(*tab_id, &None, &"k".into()).unwrap();
    }
    assert_eq!(notify().await.unwrap(), 10);
    for (n, (_, rx)) in tabs.iter_mut().enumerate() {
        let frames = std::iter::from_fn(|| rx.try_recv().ok()).count();
        assert_eq!(frames, if n < 10 { 2 } else { 1 }, "tab {n}");
    }
    for (tab_id, _) in &tabs[..10] {
        hub.unlisten::<Chat>(*tab_id, &None, &"k".into()).unwrap();
    }
    assert_eq!(notify().await.unwrap(), 0);
    assert_eq!((hub.metrics().keys, hub.metrics().listens), (0, 0));
}
