use proptest::prelude::*;

use super::*;

/// Everything an inbox answers to `chunks` fed one after another, up to its first error.
fn read_in(chunks: &[&[u8]], max: usize) -> (Vec<Incoming>, Option<ProtocolError>) {
    let mut inbox = Inbox::new(max);
    let mut got = Vec::new();
    for chunk in chunks {
        inbox.extend(chunk);
        loop {
            match inbox.next() {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(error) => return (got, Some(error)),
            }
        }
    }
    (got, None)
}

/// Bytes that are often frames: a valid masked header with a random opcode and flags,
/// then a payload, or raw noise.
pub(in crate::stream::ws) fn frames() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<[u8; 4]>(),
    )
        .prop_map(|(first, payload, mask)| super::tests::masked(first & 0x8F, &payload, mask));
    let piece = prop_oneof![4 => frame, 1 => prop::collection::vec(any::<u8>(), 0..20)];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn any_bytes_give_frames_or_an_error_and_parse_consumes_at_most_what_it_has(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut message = None;
        if let Ok(Some((_, used))) = parse(&bytes, &mut message, 4096) {
            prop_assert!(used <= bytes.len());
        }
        let _ = read_in(&[&bytes], 4096);
    }

    #[test]
    fn chunked_feeding_reads_what_whole_feeding_reads(
        bytes in frames(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        max in prop_oneof![Just(4096usize), 0usize..400],
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[from..to]);
            from = to;
        }
        prop_assert_eq!(read_in(&chunks, max), read_in(&[&bytes], max));
    }
}
