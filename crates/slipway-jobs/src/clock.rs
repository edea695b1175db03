//! The clock a worker times jobs by: the database's. Leases, due times and retries are
//! compared across replicas, so they must all be read from one clock; each replica's own
//! clock may be off by seconds or minutes. Reading the database for every comparison would
//! cost a round trip each time, so the worker measures how far its clock is from the
//! database's now and then, and adds that offset to its own readings.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use slipway_core::time::{Timestamp, now};
use slipway_store::{Backend, Store, StoreResult};

/// How often the offset is measured again: clocks drift slowly, and a stepped clock (NTP
/// catching up) is corrected within this.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// An offset larger than this is worth an operator's attention.
const WARN_ABOVE: TimeDelta = TimeDelta::seconds(2);
/// Readings taken per measurement; the one with the shortest round trip is kept.
const READINGS: usize = 3;

#[derive(Debug)]
pub(crate) struct DatabaseClock {
    /// How far this process's clock is from its true reading. Zero except in tests, which
    /// use it to play a replica whose clock is wrong.
    local_error: TimeDelta,
    state: Mutex<Offset>,
}

#[derive(Debug)]
struct Offset {
    /// The database's clock minus this process's.
    by: TimeDelta,
    measured: Option<Instant>,
}

impl DatabaseClock {
    pub(crate) fn new(local_error: TimeDelta) -> Self {
        DatabaseClock { local_error, state: Mutex::new(Offset { by: TimeDelta::zero(), measured: None }) }
    }

    fn local(&self) -> Timestamp {
        now() + self.local_error
    }

    /// The database's time now, as far as the last measurement tells.
    pub(crate) fn now(&self) -> Timestamp {
        self.local() + self.state.lock().unwrap_or_else(|e| e.into_inner()).by
    }

    /// Measures the offset if it has not been measured for a while.
    pub(crate) async fn sync(&self, store: &dyn Store) -> StoreResult<()> {
        let due =
            self.state.lock().unwrap_or_else(|e| e.into_inner()).measured.is_none_or(|at| at.elapsed() >= RESYNC_EVERY);
        if !due {
            return Ok(());
        }
        let by = match store.backend() {
            // A SQLite database is a file on this host and its clock is this host's: there is
            // nothing to measure, and a reading could only add the round trip's error.
            Backend::Sqlite => -self.local_error,
            Backend::Postgres => self.measure(store).await?,
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let first = state.measured.is_none();
        if by.abs() > WARN_ABOVE && (first || (by - state.by).abs() > WARN_ABOVE) {
            tracing::warn!(
                offset_ms = by.num_milliseconds(),
                "this host's clock differs from the database's; jobs are timed by the database's clock"
            );
        }
        *state = Offset { by, measured: Some(Instant::now()) };
        Ok(())
    }

    /// The database's clock minus this process's. Each reading is taken to be from the middle
    /// of its round trip, so its error is at most half the trip; a trip slowed by a busy pool
    /// or runtime would skew it by that much, so the shortest of a few is kept. (One slowed
    /// reading made a deploy wait about 0.7 s for its due time in `bench/deploy`.)
    async fn measure(&self, store: &dyn Store) -> StoreResult<TimeDelta> {
        let mut best: Option<(TimeDelta, TimeDelta)> = None;
        for _ in 0..READINGS {
            let before = self.local();
            let database = store.database_time().await?;
            let after = self.local();
            let trip = after - before;
            let by = database - (before + trip / 2);
            if best.is_none_or(|(shortest, _)| trip < shortest) {
                best = Some((trip, by));
            }
        }
        Ok(best.map_or(TimeDelta::zero(), |(_, by)| by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_carry_the_measured_offset_and_the_local_error() {
        let clock = DatabaseClock::new(TimeDelta::minutes(10));
        let ahead = clock.now() - now();
        assert!(ahead > TimeDelta::seconds(599) && ahead < TimeDelta::seconds(601), "{ahead}");
        clock.state.lock().unwrap().by = TimeDelta::minutes(-10);
        assert!((clock.now() - now()).abs() < TimeDelta::seconds(1));
    }
}
