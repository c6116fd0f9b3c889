//! The worker's acks, coalesced: every handled message's ack goes to one task, which sends
//! as one `ack` request all the acks that arrived while its previous request was in flight
//! (at most [`ACK_BATCH_MAX`]). Nothing waits to fill a batch: an ack that arrives alone is
//! sent at once. Each caller gets the outcome of the request that carried its ack, so a
//! message still counts as done only once the server has made the ack durable.
//!
//! Every ack is a synced append to the server's group journal; handlers finishing together
//! (concurrency above 1) then share one request and one fsync instead of paying one each
//! (`docs/BENCHMARKS.md`, worker figures).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::group::MessageId;

/// Most acks sent in one request (the server takes up to 10,000 per request).
pub(crate) const ACK_BATCH_MAX: usize = 1000;

type Pending = (MessageId, oneshot::Sender<Result<()>>);

/// A handle to the coalescing task; cheap to clone. The task ends once every handle is gone
/// and the acks queued before are sent.
#[derive(Clone)]
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Acker {
    /// Starts the task; `send` sends one `ack` request for the ids.
    pub fn start<F, Fut>(send: F) -> (Acker, JoinHandle<()>)
    where
        F: Fn(Vec<MessageId>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        (Acker { tx }, tokio::spawn(coalesce(send, rx)))
    }

    /// Acks `id`; returns once the request that carried it has been answered.
    pub async fn ack(&self, id: MessageId) -> Result<()> {
        self.enqueue(id)?.await.map_err(|_| Error::Closed)?
    }

    /// Queues `id` and returns where its outcome will arrive.
    fn enqueue(&self, id: MessageId) -> Result<oneshot::Receiver<Result<()>>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((id, tx)).map_err(|_| Error::Closed)?;
        Ok(rx)
    }
}

async fn coalesce<F, Fut>(send: F, mut rx: mpsc::UnboundedReceiver<Pending>)
where
    F: Fn(Vec<MessageId>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut batch: Vec<Pending> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < ACK_BATCH_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let ids = batch.iter().map(|(id, _)| *id).collect();
        match send(ids).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, reply)) = batch.pop() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(Error::Batch(Arc::clone(&e))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::{Notify, Semaphore};

    use super::*;

    fn id(offset: u64) -> MessageId {
        MessageId { partition: 0, offset }
    }

    #[tokio::test]
    async fn acks_arriving_during_a_request_share_the_next_one() {
        let requests: Arc<Mutex<Vec<Vec<MessageId>>>> = Arc::default();
        let in_flight = Arc::new(Notify::new());
        let gate = Arc::new(Semaphore::new(0));
        let (r, n, g) = (requests.clone(), in_flight.clone(), gate.clone());
        let (acker, task) = Acker::start(move |ids| {
            let fail = ids.len() == 2;
            r.lock().unwrap().push(ids);
            n.notify_one();
            let g = g.clone();
            async move {
                g.acquire().await.map_err(|_| Error::Closed)?.forget();
                if fail {
                    return Err(Error::Protocol("refused".into()));
                }
                Ok(())
            }
        });
        // A lone ack goes at once, alone.
        let first = acker.enqueue(id(0)).unwrap();
        in_flight.notified().await;
        // Four more arrive while it is in flight: one request next, none waiting to fill.
        let more: Vec<_> = (1..=4).map(|o| acker.enqueue(id(o)).unwrap()).collect();
        gate.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        in_flight.notified().await;
        gate.add_permits(1);
        for rx in more {
            assert!(rx.await.unwrap().is_ok());
        }
        // A failed request fails every ack it carried (shared), a lone one with its own error.
        let failing: Vec<_> = (5..=6).map(|o| acker.enqueue(id(o)).unwrap()).collect();
        in_flight.notified().await;
        gate.add_permits(1);
        for rx in failing {
            assert!(matches!(rx.await.unwrap(), Err(Error::Batch(_))));
        }
        assert_eq!(*requests.lock().unwrap(), vec![vec![id(0)], vec![id(1), id(2), id(3), id(4)], vec![id(5), id(6)]]);
        // The task ends once the handles are gone.
        drop(acker);
        task.await.unwrap();
    }
}
