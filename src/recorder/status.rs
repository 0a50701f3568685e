//! What the API shows of each stream's recorder, and the backoff between its restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Recording,
    Backoff,
    Stopped,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Recording => "recording",
            State::Backoff => "backoff",
            State::Stopped => "stopped",
            State::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub last_segment_ms: Option<i64>,
}

/// Told that recordings grew (retention checks the disk then).
pub type OnGrowth = Arc<dyn Fn() + Send + Sync>;

/// Every stream's recorder status, by stream id; read by the API.
pub type Statuses = Arc<Mutex<BTreeMap<String, Status>>>;

pub(super) fn update(statuses: &Statuses, id: &str, f: impl FnOnce(&mut Status)) {
    let mut all = statuses.lock().unwrap_or_else(|e| e.into_inner());
    let s = all.entry(id.to_owned()).or_insert(Status {
        state: State::Starting,
        restarts: 0,
        last_error: None,
        last_segment_ms: None,
    });
    f(s);
}

/// Exponential backoff: 1 s, 2 s, 4 s … capped at `max`, back to the start after a run that
/// lasted `stable` or longer.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    stable: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, stable: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
            stable,
        }
    }

    /// The wait before the next start, given how long the last run lasted.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= self.stable {
            self.next = self.min;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(8), s(60));
        let waits: Vec<_> = (0..6).map(|_| b.after_run(s(2)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.after_run(s(61)), s(1));
        assert_eq!(b.after_run(s(1)), s(2));
    }
}
