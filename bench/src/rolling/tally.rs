//! A tab's count against what was published: what was lost, duplicated or unexpected.

/// One tab's count against what was published.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub expected: u64,
    pub delivered: u64,
    /// Numbers posted successfully to the tab's key that never arrived.
    pub lost: Vec<u64>,
    /// Numbers that arrived more than once (each extra copy counts in `duplicates`).
    pub duplicated: Vec<u64>,
    pub duplicates: u64,
    /// Numbers that arrived although their notify failed or went to another key.
    pub unexpected: Vec<u64>,
}

/// `counts[n]`: copies of notification `n` the tab received; `published[n]`: whether notify
/// `n` was answered 200. Notification `n` goes to key `n % keys`.
pub(super) fn tally(counts: &[u8], key: usize, keys: usize, published: &[bool]) -> Tally {
    let mut tally = Tally::default();
    let len = counts.len().max(published.len());
    for number in 0..len {
        let copies = u64::from(counts.get(number).copied().unwrap_or(0));
        let mine = number % keys == key && published.get(number).copied().unwrap_or(false);
        tally.delivered += copies;
        if mine {
            tally.expected += 1;
            if copies == 0 {
                tally.lost.push(number as u64);
            }
            if copies > 1 {
                tally.duplicated.push(number as u64);
                tally.duplicates += copies - 1;
            }
        } else if copies > 0 {
            tally.unexpected.push(number as u64);
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_duplicated_and_unexpected_per_tab() {
        // Four keys: this tab (key 1) expects 1, 5, 9, 13; notify 9 failed.
        let published = [
            true, true, true, true, true, true, true, true, true, false, true, true, true, true,
        ];
        let mut counts = vec![0u8; 14];
        counts[1] = 1;
        counts[5] = 3; // two extra copies
        counts[9] = 1; // its notify failed, yet it came
        counts[2] = 1; // another key's
        let tally = tally(&counts, 1, 4, &published);
        assert_eq!(tally.expected, 3);
        assert_eq!(tally.lost, vec![13]);
        assert_eq!(tally.duplicated, vec![5]);
        assert_eq!(tally.duplicates, 2);
        assert_eq!(tally.unexpected, vec![2, 9]);
        assert_eq!(tally.delivered, 6);
    }

    #[test]
    fn a_tab_with_everything_once_is_clean() {
        let published = vec![true; 10];
        let counts: Vec<u8> = (0..10).map(|n| u8::from(n % 2 == 0)).collect();
        let tally = tally(&counts, 0, 2, &published);
        assert_eq!((tally.expected, tally.delivered), (5, 5));
        assert!(tally.lost.is_empty() && tally.duplicated.is_empty() && tally.unexpected.is_empty());
        // Nothing received past the end of what was posted counts as lost.
        let tally = super::tally(&[], 0, 2, &published);
        assert_eq!(tally.lost, vec![0, 2, 4, 6, 8]);
    }
}
