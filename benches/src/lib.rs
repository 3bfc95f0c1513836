//! Benchmarks of the rados-mail object-store layer.
//!
//! Two benchmarks live in this crate:
//!
//! * the `store-bench` binary measures the librados backend ([`librados::RadosStore`])
//!   against a real cluster side by side with Ceph's own `rados bench`, in one run, and
//!   prints a markdown table that names the machine, the commit and the Ceph version;
//! * the `memory` criterion benchmark measures [`objstore::MemoryStore`], the store layer
//!   without a cluster.
//!
//! This library holds what the binary needs besides the measuring itself, kept apart so that
//! it can be unit-tested: where a result was measured ([`Provenance`]), how `rados bench`
//! output is read ([`rados_cli`]), how results are printed ([`report`]) and a small
//! deterministic random generator ([`SplitMix64`]) for picking objects and keys.

mod provenance;
pub mod rados_cli;
pub mod report;

pub use provenance::Provenance;

/// A small, fast, seedable pseudo-random generator (SplitMix64).
///
/// Benchmarks only need "spread over the keys, no pattern the cache could exploit"; a
/// dependency on a full random crate is not worth it for that.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` must not be 0). The modulo bias is below 2⁻³² for the
    /// ranges benchmarks use, far under any measurable effect.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_in_range() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every value of 0..10 comes up in 1000 draws");
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
