use proptest::prelude::*;

use super::{tests::read_to_end, *};

proptest! {
    #[test]
    fn the_socket_reads_what_an_inbox_reads_whatever_the_cuts(
        bytes in frame::properties::frames(),
        cuts in prop::collection::vec(0usize..700, 0..6),
    ) {
        let mut inbox = Inbox::new(MAX_CLIENT_MESSAGE);
        inbox.extend(&bytes);
        let mut whole = Vec::new();
        let end = loop {
            match inbox.next() {
                Ok(Some(frame)) => whole.push(frame),
                Ok(None) => break Unreadable::Gone,
                Err(error) => break Unreadable::Broken(error),
            }
        };
        let mut io = Io::new(Scripted::new(bytes, cuts), TabId::random(), &[]);
        prop_assert_eq!(read_to_end(&mut io), (whole, end));
    }
}
