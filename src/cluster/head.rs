//! Reads of the message log's head, shared by the subscribes that wait for one at once.
//!
//! A subscribe on a cluster node first learns the log's head, so its replay includes what
//! other nodes committed before it ([`super::Member::catch_up`]). It needs a read that
//! *began after it was called*: one already in flight may have missed a commit made just
//! before the call. So the callers that arrive while a read runs queue behind it and share
//! the next one. Under a reconnect storm a node reads the head once per database round
//! trip, not once per stream; a lone caller reads as before.

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
};

/// See the module documentation.
#[derive(Default)]
pub(super) struct HeadReads {
    /// Held while a read runs, over the last read that succeeded: the ordinal it began as,
    /// and the head it read. Tokio's mutex is fair: the callers queued behind one read get
    /// their turn in order, and the first of them begins the read the rest share.
    last: tokio::sync::Mutex<Option<(u64, i64)>>,
    /// Reads begun so far; read without the lock, so a caller knows which reads began
    /// after it did.
    begun: AtomicU64,
}

impl HeadReads {
    /// The head, from a read that began after this call: the last one, if it did, or a new
    /// one by `read`. A failed read is the caller's error; the next caller reads again.
    pub(super) async fn read<F, Fut, E>(&self, read: F) -> Result<i64, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, E>>,
    {
        let asked = self.begun.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        if let Some((ordinal, head)) = *last
            && ordinal > asked
        {
            return Ok(head);
        }
        let ordinal = self.begun.fetch_add(1, Ordering::AcqRel) + 1;
        let head = read().await?;
        *last = Some((ordinal, head));
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize},
    };

    use super::*;

    /// A log whose head the test moves, counting the reads of it; each read takes 20 ms.
    #[derive(Clone, Default)]
    struct Log {
        head: Arc<AtomicI64>,
        reads: Arc<AtomicUsize>,
    }

    impl Log {
        async fn read(&self) -> Result<i64, ()> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(head)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_waiting_during_a_read_share_the_next_one() {
        let (reads, log) = (Arc::new(HeadReads::default()), Log::default());
        let first = tokio::spawn({
            let (reads, log) = (reads.clone(), log.clone());
            async move { reads.read(|| log.read()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Committed while the first read runs: the first may have missed it, the callers
        // from now on must not.
        log.head.store(7, Ordering::SeqCst);
        let later: Vec<_> = (0..50)
            .map(|_| {
                let (reads, log) = (reads.clone(), log.clone());
                tokio::spawn(async move { reads.read(|| log.read()).await })
            })
            .collect();
        assert_eq!(first.await.expect("first caller"), Ok(0));
        for caller in later {
            assert_eq!(
                caller.await.expect("a later caller"),
                Ok(7),
                "a caller that came during a read was answered from a read begun before it"
            );
        }
        assert_eq!(
            log.reads.load(Ordering::SeqCst),
            2,
            "the 50 callers that waited together should share one read"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_after_a_read_ended_reads_again() {
        let (reads, log) = (HeadReads::default(), Log::default());
        assert_eq!(reads.read(|| log.read()).await, Ok(0));
        log.head.store(3, Ordering::SeqCst);
        assert_eq!(
            reads.read(|| log.read()).await,
            Ok(3),
            "a finished read was reused by a caller that came after it"
        );
        assert_eq!(log.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_leaves_the_next_caller_to_read() {
        let reads = HeadReads::default();
        assert_eq!(reads.read(|| async { Err::<i64, ()>(()) }).await, Err(()));
        assert_eq!(reads.read(|| async { Ok::<i64, ()>(4) }).await, Ok(4));
    }
}
