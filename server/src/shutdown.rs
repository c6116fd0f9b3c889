//! Graceful shutdown: one signal that every long-lived task listens to.
//!
//! [`Shutdown::new`] gives a [`ShutdownTrigger`] (held by whoever decides to stop: the
//! SIGTERM/SIGINT handler) and a [`Shutdown`] that is cloned into the accept loop, every
//! connection, every long-poll and every SSE stream. Once triggered: the accept loop stops,
//! connections finish their in-flight request and close, long-polls answer with what they
//! have and SSE streams end. Then `crate::run` closes the catalog (drain, sync, clean-shutdown
//! marker). Triggering is idempotent and is never "missed": a late listener sees it at once.

use tokio::sync::watch;

/// Fires the shutdown signal.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Listens for the shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A new signal, not yet fired.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown has started (at once if it already has). If every trigger is
    /// dropped without firing, this never completes.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn termination_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn late_listeners_see_the_signal() {
        let (trigger, shutdown) = Shutdown::new();
        assert!(!shutdown.is_triggered());
        let early = shutdown.clone();
        let waiter = tokio::spawn(async move { early.wait().await });
        trigger.trigger();
        waiter.await.unwrap();
        shutdown.wait().await;
        assert!(shutdown.clone().is_triggered());
    }
}
