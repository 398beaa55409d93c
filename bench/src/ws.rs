//! The generator's WebSocket client: the handshake, then frames parsed in place in one buffer
//! per connection, no allocation per message. The generator must cost less per message than
//! the server it measures, or arrival times measure the generator: with tungstenite (a `String`
//! and a `Bytes` per message, its own buffering) it spent ~5.6 µs of its core per message
//! against the server's ~6, where a bare reader spends ~4.
use std::ops::Range;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Any fixed key will do: the server checks the accept header's shape, not secrecy.
const KEY: &str = "bm90aWYtYmVuY2gta2V5IQ==";
/// Client frames must be masked (RFC 6455 §5.3); any key is valid.
const MASK: [u8; 4] = [0x6e, 0x6f, 0x74, 0x66];

/// One WebSocket connection, client side.
pub struct WsConn {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Where the next unread frame starts in `buffer`.
    start: usize,
}

/// A complete frame at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    opcode: u8,
    payload: Range<usize>,
    /// Its length, header included.
    len: usize,
}

/// The frame at the front of `data`; `Ok(None)` if it is not all there yet.
fn parse_frame(data: &[u8]) -> Result<Option<Frame>, String> {
    let (Some(&first), Some(&second)) = (data.first(), data.get(1)) else {
        return Ok(None);
    };
    if first & 0x80 == 0 {
        return Err("a fragmented frame: the generator reads whole messages only".into());
    }
    if second & 0x80 != 0 {
        return Err("a masked frame from the server (RFC 6455 forbids it)".into());
    }
    let (len, header) = match second & 0x7f {
        126 => match data.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match data.get(2..10) {
            Some(b) => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(b);
                (
                    usize::try_from(u64::from_be_bytes(bytes)).map_err(|e| e.to_string())?,
                    10,
                )
            }
            None => return Ok(None),
        },
        n => (n as usize, 2),
    };
    let end = header + len;
    Ok((data.len() >= end).then_some(Frame {
        opcode: first & 0x0f,
        payload: header..end,
        len: end,
    }))
}

/// A masked client frame carrying `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

impl WsConn {
    /// Connects to `url` (`ws://host:port/path?query`) and completes the handshake.
    pub async fn connect(url: &str) -> Result<WsConn, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or(format!("{url}: only ws:// URLs"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let stream = TcpStream::connect(host)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = WsConn {
            stream,
            buffer: Vec::with_capacity(512),
            start: 0,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        conn.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let end = loop {
            if let Some(at) = conn.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if conn.fill().await? == 0 {
                return Err(format!("{url}: closed during the handshake"));
            }
        };
        let head = String::from_utf8_lossy(&conn.buffer[..end]);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("{url}: {}", head.lines().next().unwrap_or_default()));
        }
        // Frames may have come with the response.
        conn.start = end;
        Ok(conn)
    }

    /// Reads more bytes after what is buffered; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, String> {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.reserve(512);
        self.stream
            .read_buf(&mut self.buffer)
            .await
            .map_err(|e| e.to_string())
    }

    /// The next text message's place in the buffer; pings are answered, other frames skipped.
    async fn next_text_range(&mut self) -> Result<Range<usize>, String> {
        loop {
            let Some(frame) = parse_frame(&self.buffer[self.start..])? else {
                if self.fill().await? == 0 {
                    return Err("closed".into());
                }
                continue;
            };
            let payload = self.start + frame.payload.start..self.start + frame.payload.end;
            self.start += frame.len;
            match frame.opcode {
                TEXT => return Ok(payload),
                CLOSE => return Err("closed".into()),
                PING => {
                    let pong = client_frame(PONG, &self.buffer[payload]);
                    self.write(&pong).await?;
                }
                _ => {}
            }
        }
    }

    /// The next text message.
    pub async fn next_text(&mut self) -> Result<&str, String> {
        let range = self.next_text_range().await?;
        self.text(range)
    }

    /// Text read before (a range `next_text_range` returned, before the next read).
    fn text(&self, range: Range<usize>) -> Result<&str, String> {
        std::str::from_utf8(&self.buffer[range]).map_err(|e| e.to_string())
    }

    /// The next text message for which `wanted` gives a part of it (a range within it);
    /// `answer` is sent back for messages equal to `ping` (Engine.IO's ping, say).
    pub async fn next_matching(
        &mut self,
        wanted: impl Fn(&str) -> Option<Range<usize>>,
        ping: Option<(&str, &str)>,
    ) -> Result<&str, String> {
        let found = loop {
            let range = self.next_text_range().await?;
            let text = self.text(range.clone())?;
            if let Some(part) = wanted(text) {
                break range.start + part.start..range.start + part.end;
            }
            if let Some((ping, answer)) = ping {
                if text == ping {
                    self.send_text(answer).await?;
                }
            }
        };
        self.text(found)
    }

    async fn write(&mut self, frame: &[u8]) -> Result<(), String> {
        self.stream.write_all(frame).await.map_err(|e| e.to_string())
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.write(&client_frame(TEXT, text.as_bytes())).await
    }

    /// Sends a close frame and shuts the connection down, as a closing tab does.
    pub async fn close(mut self) {
        let _ = self.write(&client_frame(CLOSE, &[])).await;
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_frames_and_waits_for_partial_ones() {
        let short = [0x81, 3, b'a', b'b', b'c', 0x89];
        let frame = parse_frame(&short).unwrap().unwrap();
        assert_eq!((frame.opcode, frame.payload.clone(), frame.len), (TEXT, 2..5, 5));
        assert_eq!(
            parse_frame(&short[5..]).unwrap(),
            None,
            "one byte of the next frame"
        );
        assert_eq!(parse_frame(&short[..4]).unwrap(), None, "payload not all there");

        let mut long = vec![0x81, 126, 1, 0];
        long.extend(std::iter::repeat_n(b'x', 256));
        let frame = parse_frame(&long).unwrap().unwrap();
        assert_eq!((frame.payload, frame.len), (4..260, 260));
        assert_eq!(parse_frame(&long[..100]).unwrap(), None);
    }

    #[test]
    fn refuses_what_the_generator_cannot_read_correctly() {
        assert!(parse_frame(&[0x01, 1, b'a']).is_err(), "fragmented");
        assert!(parse_frame(&[0x81, 0x81, 0, 0, 0, 0, b'a']).is_err(), "masked");
    }

    #[test]
    fn client_frames_are_masked_and_unmask_to_the_payload() {
        let frame = client_frame(TEXT, b"40");
        assert_eq!(&frame[..2], &[0x81, 0x80 | 2]);
        let mask = &frame[2..6];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(payload, b"40");
        let long = client_frame(TEXT, &[b'x'; 300]);
        assert_eq!(&long[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(long.len(), 4 + 4 + 300);
    }
}
