//! Hex digits for the 16 bytes of a tab's id.

/// An id's 16 bytes (big-endian, see [`TabId::to_bytes`](crate::TabId::to_bytes)) as its 32 lowercase hex digits:
/// what `Display` writes, and what each WebSocket notification frame carries.
pub(crate) fn hex(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}
