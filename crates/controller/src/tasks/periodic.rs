//! The shape of the controller's periodic background tasks: a name, a
//! period, and one idempotent pass, run until shutdown. A pass that runs
//! long delays the next tick rather than bunching passes up.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// One pass of a periodic task. Passes are idempotent: a pass cut short by
/// a crash is simply done again by the next one (here or on another
/// controller).
pub trait Pass: Send {
    fn pass(&mut self) -> impl Future<Output = ()> + Send;
}

/// A task borrowed for a while (e.g. to pass once more after shutdown).
impl<P: Pass> Pass for &mut P {
    fn pass(&mut self) -> impl Future<Output = ()> + Send {
        (**self).pass()
    }
}

/// Run `task` every `period` until `shutdown` (the first pass at once).
pub async fn every<P: Pass>(
    name: &'static str,
    period: Duration,
    shutdown: CancellationToken,
    mut task: P,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!(task = name, ?period, "periodic task started");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        task.pass().await;
    }
    tracing::debug!(task = name, "periodic task stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Count(Arc<AtomicU32>);

    impl Pass for Count {
        async fn pass(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_come_every_period_until_shutdown() {
        let n = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(every(
            "count",
            Duration::from_secs(10),
            stop.clone(),
            Count(n.clone()),
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        stop.cancel();
        task.await.unwrap();
        // At 0, 10, 20 and 30 s.
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }
}
