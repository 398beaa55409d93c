use super::*;

fn handshake(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[test]
fn the_accept_key_is_the_rfcs_and_bad_handshakes_say_why() {
    let good = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    // RFC 6455 §1.3's example.
    assert_eq!(accept(&handshake(&good)).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(accept(&handshake(&good[1..])), Err(HandshakeRefused::NotUpgrade));
    let mut old = good;
    old[2].1 = "8";
    assert_eq!(accept(&handshake(&old)), Err(HandshakeRefused::Version));
    assert_eq!(accept(&handshake(&good[..3])), Err(HandshakeRefused::NoKey));
}

#[test]
fn a_key_that_is_not_the_base64_of_16_bytes_is_refused() {
    let with_key = |key: &str| {
        accept(&handshake(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", key),
        ]))
    };
    for bad in [
        "",
        "not base64!",
        // 15 and 17 bytes.
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        // 16 bytes without their padding.
        "dGhlIHNhbXBsZSBub25jZQ",
        " dGhlIHNhbXBsZSBub25jZQ==",
    ] {
        assert_eq!(with_key(bad), Err(HandshakeRefused::BadKey), "{bad:?}");
    }
    assert!(with_key("AAAAAAAAAAAAAAAAAAAAAA==").is_ok());
    assert_eq!(
        HandshakeRefused::BadKey.into_response().status(),
        StatusCode::BAD_REQUEST
    );
}

/// tokio puts a task's future in a cell aligned to 128 bytes, with ~100 bytes of its own:
/// an idle connection's task stays in the 256-byte class only while this holds.
#[tokio::test]
async fn a_connections_task_holds_only_its_link_tab_and_phase() {
    let hub: Hub<Option<String>> = Hub::new(crate::Config::default(), |_| async { None });
    let (tab_id, rx) = hub.open(None);
    let open = OpenTab {
        slot: hub.connection_slot(None).unwrap(),
        tab_id,
        conn: 0,
        rx: Some(rx),
    };
    let (ours, _theirs) = tokio::io::duplex(64);
    let serve = Serving {
        link: Arc::new(Link::new(ours, tab_id, &[])),
        open,
        phase: Phase::Hello,
    };
    assert!(
        std::mem::size_of_val(&serve) <= 128,
        "{} bytes",
        std::mem::size_of_val(&serve)
    );
}
