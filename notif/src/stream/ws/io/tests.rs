use super::*;
use crate::{hub::Stamp, EVENT_NOTIF};
use std::sync::Arc;

#[test]
fn notification_frames_are_encode_ws_text_frames() {
    let tab_id = TabId::random();
    let (ours, _theirs) = tokio::io::duplex(64);
    let mut io = Io::new(ours, tab_id, &[]);
    for (seq, data) in [(0, "{}".to_owned()), (u64::MAX, "x".repeat(200))] {
        io.out.clear();
        io.queue(Outgoing::Notif {
            seq,
            data: Arc::from(data.as_str()),
            at: Stamp::now(),
        });
        let text = encode_ws(EVENT_NOTIF, Some(format_args!("{tab_id}.{seq}")), &data);
        let mut want = Vec::new();
        frame::put(&mut want, OpCode::Text, text.as_bytes());
        // Then, for some frames, a ping (the test below).
        assert_eq!(io.out[..want.len()], want, "seq {seq}");
    }
}

#[test]
fn every_64th_frame_is_followed_by_a_ping_asking_for_an_acknowledgement() {
    let frame = |seq| Outgoing::Notif {
        seq,
        data: Arc::from("{}"),
        at: Stamp::now(),
    };
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..8 {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = Io::new(ours, TabId::random(), &[]);
        let mut asked = Vec::new();
        for seq in 1..=128 {
            io.out.clear();
            io.queue(frame(seq));
            let ping = [[0x89, 8].as_slice(), &seq.to_be_bytes()].concat();
            if io.out.ends_with(&ping) {
                asked.push(seq);
            }
        }
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert_eq!(asked[1], asked[0] + 64);
        firsts.insert(asked[0]);
    }
    assert!(firsts.len() > 1, "tabs are asked at different frames");
}

/// Everything `io` reads until it can read no more.
pub(super) fn read_to_end<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>) -> (Vec<Incoming>, Unreadable) {
    let mut got = Vec::new();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        match io.poll_read(&mut cx) {
            Poll::Ready(Ok(frame)) => got.push(frame),
            Poll::Ready(Err(end)) => return (got, end),
            Poll::Pending => return (got, Unreadable::Gone),
        }
    }
}

#[test]
fn an_idle_reader_keeps_no_inbox_and_one_inside_a_message_keeps_it() {
    use tokio::io::AsyncWriteExt;
    let mask = [0u8; 4];
    let frame =
        |first: u8, payload: &[u8]| [&[first, 0x80 | payload.len() as u8][..], &mask, payload].concat();
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let mut io = Io::new(ours, TabId::random(), &frame(0x89, b"early"));
    assert!(io.inbox.is_some(), "what hyper read past the handshake");
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert_eq!(
        io.poll_read(&mut cx),
        Poll::Ready(Ok(Incoming::Ping(b"early".to_vec())))
    );
    assert!(io.inbox.is_none());

    let mut write = |bytes: Vec<u8>| {
        futures::executor::block_on(theirs.write_all(&bytes)).unwrap();
    };
    write(frame(0x01, b"a"));
    assert!(io.poll_read(&mut cx).is_pending());
    assert!(io.inbox.is_some(), "a text message is in progress");
    write(frame(0x80, b"b"));
    assert!(io.poll_read(&mut cx).is_pending());
    assert!(io.inbox.is_none(), "the message ended");
    write(frame(0x80, b"c"));
    assert_eq!(
        io.poll_read(&mut cx),
        Poll::Ready(Err(Unreadable::Broken(ProtocolError::UnexpectedContinuation)))
    );
}

#[test]
fn a_fragmented_message_is_cut_once_it_passes_4_kib() {
    let mask = [0u8; 4];
    let fragment = |first: u8| [&[first, 0x80 | 126, 4, 0][..], &mask, &[b'a'; 1024]].concat();
    let mut bytes = fragment(0x01);
    for _ in 0..4095 {
        bytes.extend(fragment(0x00));
    }
    let total = bytes.len();
    let mut io = Io::new(Scripted::new(bytes, vec![READ_CHUNK]), TabId::random(), &[]);
    let (frames, end) = read_to_end(&mut io);
    assert!(frames.is_empty());
    assert_eq!(
        end,
        Unreadable::Broken(ProtocolError::MessageTooBig {
            bytes: 5 * 1024,
            max: MAX_CLIENT_MESSAGE
        })
    );
    let read = io.stream.as_ref().unwrap().at;
    assert!(
        read <= 4 * 1032 + READ_CHUNK,
        "{read} of {total} bytes read: 4 KiB and the chunk with the next header at most"
    );
}
