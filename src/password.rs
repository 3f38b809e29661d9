//! argon2id password hashing on a small pool of dedicated threads.
//!
//! Each hash needs ~19 MiB of working memory and tens of milliseconds of CPU. On tokio's
//! blocking pool (up to 512 threads, each allocating and freeing its own 19 MiB) a login
//! storm would take the process past 1 GB and keep most of it. Here a fixed
//! number of threads each own one set of argon2 blocks, allocated on first use and reused
//! for every hash, so hashing memory is bounded by `password.hash_threads` × 19 MiB. A
//! thread idle for `password.keep_memory_secs` gives its blocks back to the system, so a
//! server that saw a few logins does not hold 19 MiB per thread for good. At most
//! `password.hash_queue` requests wait for a thread; beyond that the caller gets `503` at
//! once instead of piling up.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        phc::{Output, ParamsString, PasswordHash, Salt},
        try_generate_salt,
    },
};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::{config::PasswordSettings, domain::Password};

/// Why a hash or a check did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hashing thread and queue slot is taken; the caller should retry after this
    /// many whole seconds.
    #[error("every password hashing thread is busy; retry after {retry_after_secs} s")]
    Busy {
        /// Seconds until a retry is likely to succeed.
        retry_after_secs: u64,
    },
    /// The pool failed (a thread died, argon2 refused its input): a bug.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Seconds a client is told to wait when every hashing thread and queue slot is taken: a hash
/// takes well under a second, so the queue drains within about that.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// The parameters new hashes use (argon2id, v0x13, m = 19 MiB, t = 2, p = 1: the crate's and
/// OWASP's defaults). The pool's blocks are sized for these.
const PARAMS: Params = Params::DEFAULT;

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// The hashing pool. Dropping it ends its threads (each after its current job), which frees
/// their blocks.
pub struct PasswordPool {
    jobs: flume::Sender<Job>,
    /// One permit per thread and per queue slot.
    admission: Arc<Semaphore>,
    /// A hash of nothing, verified against when the user does not exist (see [`dummy_hash`]).
    dummy: String,
    /// Threads holding their blocks now.
    holding: Arc<AtomicUsize>,
}

impl PasswordPool {
    /// Starts the configured number of hashing threads. A thread allocates its memory for
    /// its first hash and gives it back after `password.keep_memory_secs` without one.
    pub fn new(settings: &PasswordSettings) -> anyhow::Result<Self> {
        Self::keeping_memory(settings, Duration::from_secs(settings.keep_memory_secs))
    }

    /// As [`PasswordPool::new`], with each thread's memory kept `keep` after its last hash.
    fn keeping_memory(settings: &PasswordSettings, keep: Duration) -> anyhow::Result<Self> {
        let threads = settings.threads();
        // Many receivers, each waiting on its own (a lock around one receiver would let an
        // idle thread block the others' idle timeouts).
        let (tx, rx) = flume::unbounded::<Job>();
        let holding = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (rx, holding) = (rx.clone(), holding.clone());
            // Detached: the thread ends when the channel closes with the pool.
            thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&rx, keep, &holding))
                .context("starting a password hashing thread")?;
        }
        Ok(Self {
            jobs: tx,
            admission: Arc::new(Semaphore::new(threads + settings.hash_queue)),
            dummy: dummy_hash()?,
            holding,
        })
    }

    /// Bytes of hashing memory the threads hold now.
    pub fn memory_held(&self) -> usize {
        self.holding.load(Ordering::Relaxed) * PARAMS.block_count() * std::mem::size_of::<Block>()
    }

    /// Hashes a password (argon2id, random salt) to a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let salt = try_generate_salt().map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        self.run(move |blocks| hash_into(password.expose().as_bytes(), &salt, blocks))
            .await?
            .map_err(PasswordError::Failed)
    }

    /// Checks a password against a stored hash, or against a dummy when there is none, so
    /// that an unknown name costs the same time as a wrong password. Always one full argon2
    /// computation; `Ok(false)` for no user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |blocks| verify_into(password.as_bytes(), &stored, blocks))
            .await?
            .map_err(PasswordError::Failed)?;
        Ok(known && ok)
    }

    /// Runs `f` on a pool thread with that thread's blocks; `503` when the pool and its
    /// queue are full.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit: OwnedSemaphorePermit =
            self.admission.clone().try_acquire_owned().map_err(|_| {
                metrics::counter!("roomcast_password_busy_total").increment(1);
                PasswordError::Busy {
                    retry_after_secs: BUSY_RETRY_AFTER_SECS,
                }
            })?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let out = f(blocks);
            // The slot frees when the work is done, not when the caller stops waiting: a
            // request that gave up still occupied a thread until now.
            drop(permit);
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("every password hashing thread has ended"))?;
        rx.await
            .map_err(|_| PasswordError::Failed(anyhow::anyhow!("a password hashing thread died")))
    }
}

/// A pool thread: takes jobs until the pool is dropped, hashing into the same blocks while
/// jobs keep coming and giving them back after `keep` without one.
fn work(jobs: &flume::Receiver<Job>, keep: Duration, holding: &AtomicUsize) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = if blocks.is_empty() {
            jobs.recv()
                .map_err(|_| flume::RecvTimeoutError::Disconnected)
        } else {
            jobs.recv_timeout(keep)
        };
        let job = match job {
            Ok(job) => job,
            Err(flume::RecvTimeoutError::Timeout) => {
                blocks = Vec::new();
                holding.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        if blocks.is_empty() {
            blocks = vec![Block::new(); PARAMS.block_count()];
            holding.fetch_add(1, Ordering::Relaxed);
        }
        job(&mut blocks);
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// argon2id of `password` with `salt` under [`PARAMS`], as a PHC string.
fn hash_into(password: &[u8], salt: &[u8], blocks: &mut [Block]) -> anyhow::Result<String> {
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2(PARAMS)
        .hash_password_into_with_memory(password, salt, &mut out, blocks)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    phc(salt, &out)
}

fn phc(salt: &[u8], out: &[u8]) -> anyhow::Result<String> {
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&PARAMS).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(Salt::new(salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`: its parameters and salt, hashed into
/// `blocks`, compared in constant time.
fn verify_into(password: &[u8], stored: &str, blocks: &mut [Block]) -> anyhow::Result<bool> {
    let bad = |what: &str| anyhow::anyhow!("stored password hash: {what}");
    let parsed = PasswordHash::new(stored).map_err(|e| bad(&e.to_string()))?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| bad(&e.to_string()))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| bad(&e.to_string()))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| bad(&e.to_string()))?;
    let salt = parsed.salt.as_ref().ok_or_else(|| bad("no salt"))?;
    let expected = parsed.hash.as_ref().ok_or_else(|| bad("no hash"))?;
    // Hashes are only ever made with PARAMS; one needing more memory than a thread owns did
    // not come from here, and allocating for it would undo the bound.
    anyhow::ensure!(
        params.block_count() <= blocks.len(),
        bad("needs more memory than the pool's threads own")
    );
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, blocks)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// A well-formed PHC string under [`PARAMS`] with a random salt and a random "hash" that no
/// password produces: verifying against it costs exactly one real hash, and fails.
fn dummy_hash() -> anyhow::Result<String> {
    let salt = try_generate_salt().map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let out: Vec<u8> = (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    phc(&salt, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threads: usize, queue: usize) -> PasswordSettings {
        PasswordSettings {
            hash_threads: Some(threads),
            hash_queue: queue,
            keep_memory_secs: 3600,
        }
    }

    fn pool(threads: usize, queue: usize) -> PasswordPool {
        PasswordPool::new(&settings(threads, queue)).expect("a pool")
    }

    #[tokio::test]
    async fn an_idle_thread_gives_its_memory_back_and_hashes_again_after() {
        let pool = PasswordPool::keeping_memory(&settings(1, 1), Duration::from_millis(50))
            .expect("a pool");
        assert_eq!(pool.memory_held(), 0, "memory held before any hash");
        pool.verify("x".repeat(10), None).await.expect("verified");
        assert!(
            pool.memory_held() > 18 << 20,
            "a working thread holds its ~19 MiB"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.memory_held() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "an idle thread kept its memory"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !pool.verify("y".repeat(10), None).await.expect("verified"),
            "after giving memory back the thread must still hash"
        );
    }

    fn password(s: &str) -> Password {
        Password::parse(s.into()).expect("a valid password")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let pool = pool(1, 4);
        let h = pool.hash(password("correct horse")).await.expect("hashed");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            pool.verify("correct horse".into(), Some(h.clone()))
                .await
                .expect("verified"),
            "the right password must match"
        );
        assert!(
            !pool
                .verify("wrong horse!".into(), Some(h))
                .await
                .expect("verified"),
            "a wrong password must not match"
        );
    }

    #[tokio::test]
    async fn no_stored_hash_never_matches() {
        let pool = pool(1, 4);
        assert!(
            !pool
                .verify("anything at all".into(), None)
                .await
                .expect("verified")
        );
    }

    #[tokio::test]
    async fn hashes_from_the_argon2_crate_verify() {
        use argon2::PasswordHasher;
        let stored = Argon2::default()
            .hash_password(b"correct horse")
            .expect("crate hash")
            .to_string();
        let pool = pool(1, 4);
        assert!(
            pool.verify("correct horse".into(), Some(stored))
                .await
                .expect("verified"),
            "existing PHC strings must keep working"
        );
    }

    #[tokio::test]
    async fn past_the_queue_callers_are_told_to_retry() {
        let pool = Arc::new(pool(1, 1));
        // One job runs and one waits, both held until the gate opens, so the third caller
        // meets a full pool however fast the machine hashes.
        let gate = Arc::new(std::sync::Barrier::new(2));
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let (pool, gate) = (pool.clone(), gate.clone());
                tokio::spawn(async move { pool.run(move |_| gate.wait()).await })
            })
            .collect();
        while pool.admission.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        match pool.verify("y".repeat(10), None).await {
            Err(PasswordError::Busy { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected Busy with a third caller, got {other:?}"),
        }
        // The running job waits at the gate for the test; the queued one then passes alone.
        gate.wait();
        let gate2 = gate.clone();
        std::thread::spawn(move || gate2.wait());
        for b in busy {
            b.await.expect("joined").expect("queued calls complete");
        }
        pool.verify("z".repeat(10), None)
            .await
            .expect("slots free again once the work is done");
    }
}
