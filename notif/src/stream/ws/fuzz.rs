//! The fuzz targets' way into the WebSocket code, which is private to this module (see
//! [`crate::fuzzing`]): methods on the types declared there.
use std::task::{Context, Poll, Waker};

use http::{header, HeaderMap, HeaderName, HeaderValue};

use super::{
    accept,
    frame::{close_code_is_allowed, Inbox, Incoming, OpCode},
    io::{Io, Scripted, Unreadable, MAX_CLIENT_MESSAGE},
};
use crate::{fuzzing::Stream, fuzzing::Ws, stream::StreamRefused, TabId, LAST_EVENT_ID_HEADER};

impl Ws {
    /// Serves `input` as a client's bytes, read through the connection's reader and answered as
    /// the connection answers. The first byte says how many of the next bytes (up to 7) are the
    /// sizes of the pieces the bytes arrive in, in turn; the rest is what the client sends.
    /// Read in those pieces, the frames must read as they do all at once.
    pub fn read(input: &[u8]) {
        let Some((&count, rest)) = input.split_first() else {
            return;
        };
        let count = usize::from(count % 8).min(rest.len());
        let (cuts, sent) = rest.split_at(count);
        let cuts = cuts.iter().map(|&cut| usize::from(cut)).collect();
        let mut io = Io::new(Scripted::new(sent.to_vec(), cuts), TabId::random(), &[]);
        let mut cx = Context::from_waker(Waker::noop());
        let mut frames = Vec::new();
        let end = loop {
            let frame = match io.poll_read(&mut cx) {
                Poll::Ready(Ok(frame)) => frame,
                Poll::Ready(Err(end)) => break end,
                Poll::Pending => unreachable!("a scripted client never waits"),
            };
            match &frame {
                Incoming::Ping(payload) => io.put(OpCode::Pong, payload),
                Incoming::Close(code) => {
                    assert!(code.is_none_or(close_code_is_allowed), "{code:?} echoed");
                    io.put_close(*code);
                }
                Incoming::Acknowledged(_) => {}
            }
            let _ = io.poll_flush(&mut cx);
            frames.push(frame);
        };
        if let Unreadable::Broken(error) = &end {
            assert!(matches!(error.close_code(), 1002 | 1007 | 1009), "{error}");
            io.put_close(Some(error.close_code()));
            let _ = io.poll_flush(&mut cx);
        }

        let mut inbox = Inbox::new(MAX_CLIENT_MESSAGE);
        inbox.extend(sent);
        let mut whole = Vec::new();
        let whole_end = loop {
            match inbox.next() {
                Ok(Some(frame)) => whole.push(frame),
                Ok(None) => break Unreadable::Gone,
                Err(error) => break Unreadable::Broken(error),
            }
        };
        assert_eq!((frames, end), (whole, whole_end), "read in pieces as whole");
    }

    /// Checks `input` as a handshake's headers, one `name: value` a line. An accepted one has a
    /// version 13 and a key of 16 bytes in base64.
    pub fn handshake(input: &[u8]) {
        let mut headers = HeaderMap::new();
        for line in input.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                headers.append(name, value);
            }
        }
        if let Ok(answer) = accept(&headers) {
            use base64::Engine;
            assert_eq!(answer.len(), 28, "the base64 of a SHA-1");
            assert_eq!(headers[header::SEC_WEBSOCKET_VERSION], "13");
            let key = base64::engine::general_purpose::STANDARD.decode(&headers[header::SEC_WEBSOCKET_KEY]);
            assert_eq!(key.map(|key| key.len()), Ok(16));
        }
    }
}

impl Stream {
    /// What a stream request with this `Last-Event-ID` header and this query names as the last
    /// frame it saw. Header values and queries a request cannot carry are left out.
    pub fn last_seen(
        header: Option<&[u8]>,
        query: Option<&str>,
    ) -> Result<Option<(TabId, u64)>, StreamRefused> {
        let mut request = http::Request::builder();
        if let Some(value) = header.and_then(|value| HeaderValue::from_bytes(value).ok()) {
            request = request.header(LAST_EVENT_ID_HEADER, value);
        }
        let uri = match query {
            Some(query) => format!("{}?{query}", crate::WS_PATH),
            None => crate::WS_PATH.to_owned(),
        };
        let request = match request.uri(&uri).body(()) {
            Ok(request) => request,
            Err(_) => http::Request::new(()),
        };
        crate::stream::last_seen(&request.into_parts().0)
    }
}
