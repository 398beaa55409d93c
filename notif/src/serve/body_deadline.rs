//! A deadline for a request's whole body. hyper bounds the wait for a request's head, not for
//! its body: a client sending one byte every few seconds would hold a connection, a task and
//! a server function's buffer for as long as it likes.
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// `body`, failing with `TimedOut` if it has not arrived whole by its deadline.
pub(super) struct BodyDeadline<B> {
    body: B,
    deadline: Instant,
    /// Set at the first read that has to wait: a body read at once (most are) costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> BodyDeadline<B> {
    pub fn new(body: B, within: Duration) -> Self {
        BodyDeadline {
            body,
            deadline: Instant::now() + within,
            sleep: None,
        }
    }
}

impl<B> Body for BodyDeadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_trickles_fails_at_its_deadline_and_a_prompt_one_arrives() {
        let trickle = futures::stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x"))),
                n + 1,
            ))
        });
        let started = Instant::now();
        let read = BodyDeadline::new(StreamBody::new(Box::pin(trickle)), Duration::from_secs(30))
            .collect()
            .await;
        assert!(read.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(30));

        let prompt = BodyDeadline::new(
            http_body_util::Full::new(Bytes::from_static(b"hello")),
            Duration::from_secs(1),
        );
        let body = prompt.collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
    }
}
