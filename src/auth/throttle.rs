//! Login throttling per client address: the first [`FREE_FAILURES`] failures cost nothing,
//! then each attempt must wait a delay that doubles with every further failure (5 s, 10 s, …,
//! at most [`MAX_DELAY_MS`]). A success forgets the address. Memory is bounded: at most
//! [`MAX_ADDRESSES`] are remembered, the stalest forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;

pub const FREE_FAILURES: u32 = 5;
pub const FIRST_DELAY_MS: i64 = 5_000;
pub const MAX_DELAY_MS: i64 = 15 * 60_000;
pub const MAX_ADDRESSES: usize = 10_000;
/// An address with no failure for this long starts afresh.
pub const FORGET_MS: i64 = 86_400_000;

#[derive(Default)]
pub struct Throttle {
    by_addr: HashMap<IpAddr, Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last_ms: i64,
}

impl Throttle {
    /// `Err(ms)`: the address must wait this long before its next attempt is heard.
    pub fn admit(&self, addr: IpAddr, now_ms: i64) -> Result<(), i64> {
        let Some(e) = self.by_addr.get(&addr) else {
            return Ok(());
        };
        if e.failures < FREE_FAILURES || now_ms - e.last_ms >= FORGET_MS {
            return Ok(());
        }
        let doublings = (e.failures - FREE_FAILURES).min(20);
        let delay = (FIRST_DELAY_MS << doublings).min(MAX_DELAY_MS);
        let wait = e.last_ms + delay - now_ms;
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    pub fn failed(&mut self, addr: IpAddr, now_ms: i64) {
        if self.by_addr.len() >= MAX_ADDRESSES && !self.by_addr.contains_key(&addr) {
            self.by_addr.retain(|_, e| now_ms - e.last_ms < FORGET_MS);
            if self.by_addr.len() >= MAX_ADDRESSES
                && let Some(stalest) = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, e)| e.last_ms)
                    .map(|(a, _)| *a)
            {
                self.by_addr.remove(&stalest);
            }
        }
        let e = self.by_addr.entry(addr).or_insert(Entry {
            failures: 0,
            last_ms: now_ms,
        });
        if now_ms - e.last_ms >= FORGET_MS {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_ms = now_ms;
    }

    pub fn succeeded(&mut self, addr: IpAddr) {
        self.by_addr.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_five_failures_and_double() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let mut t = Throttle::default();
        for _ in 0..5 {
            assert!(t.admit(a, 0).is_ok());
            t.failed(a, 0);
        }
        assert_eq!(t.admit(a, 0), Err(5_000));
        assert!(t.admit(b, 0).is_ok(), "other addresses are not affected");
        assert!(t.admit(a, 5_000).is_ok());
        t.failed(a, 5_000);
        assert_eq!(t.admit(a, 5_000), Err(10_000));
        t.failed(a, 15_000);
        assert_eq!(t.admit(a, 15_000), Err(20_000));
        for i in 0..30 {
            t.failed(a, 20_000 + i);
        }
        assert_eq!(t.admit(a, 20_029), Err(MAX_DELAY_MS));
        assert!(t.admit(a, 20_029 + FORGET_MS).is_ok());
        t.succeeded(a);
        assert!(t.admit(a, 20_030).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Throttle::default();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            t.failed(IpAddr::from(i.to_be_bytes()), i64::from(i));
        }
        assert_eq!(t.by_addr.len(), MAX_ADDRESSES);
    }
}
