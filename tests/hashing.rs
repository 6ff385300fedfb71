//! Password hashing never stalls the async runtime. Alone in its own test
//! binary, so that no other test's hashing competes for the two cores.

use std::sync::Arc;

#[test]
fn hashing_never_stalls_the_runtime() {
    // Two workers, as on this machine; 16 hashes at once while a task ticks
    // every 10 ms. The hashes run on blocking threads, capped by the
    // semaphore, so the ticker stays on time.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let passwords = pronghorn_db::password::Passwords::new(2);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let ticker = tokio::spawn(async move {
            let mut worst = std::time::Duration::ZERO;
            let mut ticks = 0u32;
            let mut next = tokio::time::Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                next += std::time::Duration::from_millis(10);
                tokio::time::sleep_until(next).await;
                let late = tokio::time::Instant::now().saturating_duration_since(next);
                worst = worst.max(late);
                ticks += 1;
            }
            (worst, ticks)
        });
        let mut hashes = Vec::new();
        for i in 0..16 {
            let p = passwords.clone();
            hashes.push(tokio::spawn(async move {
                p.hash(&format!("password number {i}")).await
            }));
        }
        for h in hashes {
            assert!(h
                .await
                .expect("task")
                .expect("hash")
                .starts_with("$argon2id$"));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (worst, ticks) = ticker.await.expect("ticker");
        assert!(
            ticks > 5,
            "the ticker ran during the hashes ({ticks} ticks)"
        );
        assert!(
            worst <= std::time::Duration::from_millis(50),
            "a tick was {worst:?} late"
        );
    });
}
