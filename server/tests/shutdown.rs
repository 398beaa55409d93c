//! Graceful shutdown: every stream gets a `bye` (`shutdown`) frame and ends, and the server stops.
use std::time::Duration;

use futures::StreamExt;
use leptos::prelude::LeptosOptions;

#[tokio::test]
async fn shutdown_ends_every_stream_with_a_bye_and_the_server_stops() {
    let hub = app::server::hub(notif::Config::default(), None);
    let options = LeptosOptions::builder().output_name("notif-demo").build();
    let router = server::router(options, hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(
        listener,
        router,
        hub.clone(),
        async move {
            let _ = stopped.await;
        },
        server::HTTP_IDLE,
    ));

    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = reqwest::get(format!("http://{addr}{}", notif::STREAM_PATH))
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let hello = String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).into_owned();
        assert!(hello.contains("event: hello"), "{hello}");
        streams.push(body);
    }
    assert_eq!(hub.metrics().connected, 3);
    stop.send(()).unwrap();
    for mut body in streams {
        let mut rest = String::new();
        while let Some(Ok(chunk)) = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap()
        {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(
            rest.contains("event: bye") && rest.contains("\"shutdown\""),
            "{rest}"
        );
    }
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
