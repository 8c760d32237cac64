//! The router's cross-shard hop: round trips of `Shard::call` from shard 0
//! to shard 1 (two pinned glommio executors, flume channels), as latency
//! percentiles, with the executors parking when idle and with them spinning
//! briefly before parking.
//!
//! `cargo bench -p sluice --bench hop`

use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};
use sluice::config::ServeArgs;
use sluice::groups::service::GroupLimits;
use sluice::groups::{Coordinator, GroupService};
use sluice::lifecycle::Lifecycle;
use sluice::log::{Log, LogState};
use sluice::shard::{Job, Shard, ShardOwners};
use sluice::shard_id::ShardId;
use sluice::transactions::{TxnCoordinator, TxnLimits, TxnService};
use sluice_wal_core::{Wal, WalOptions};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ServeArgs,
}

fn main() {
    for spin in [None, Some(Duration::from_micros(50))] {
        let samples = run(spin, 50_000);
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "hop {:<18} round trips {}: p50 {:>6.1} us  p99 {:>7.1} us  p99.9 {:>7.1} us  max {:>8.1} us",
            match spin {
                None => "park when idle".to_string(),
                Some(d) => format!("spin {} us", d.as_micros()),
            },
            samples.len(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            samples[samples.len() - 1]
        );
    }
}

/// Round-trip times in microseconds, sorted.
fn run(spin: Option<Duration>, rounds: usize) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!("sluice-hop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = Arc::new(Wrapper::parse_from(["hop", "--data-dir", dir.to_str().unwrap()]).args);
    let channels: Vec<_> = (0..2).map(|_| flume::unbounded::<Job>()).collect();
    let senders: Vec<flume::Sender<Job>> = channels.iter().map(|(tx, _)| tx.clone()).collect();
    let (done_tx, done_rx) = mpsc::channel::<Vec<f64>>();
    let mut handles = Vec::new();
    for (id, (_, rx)) in channels.into_iter().enumerate() {
        let (args, peers, done) = (args.clone(), senders.clone(), done_tx.clone());
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(id % 2));
        if let Some(d) = spin {
            builder = builder.spin_before_park(d);
        }
        handles.push(
            builder
                .spawn(move || async move {
                    let wal_dir = args.data_dir.join(format!("shard-{id}"));
                    let (wal, _) = Wal::open(&wal_dir, WalOptions::default(), |_| {})
                        .await
                        .unwrap();
                    let id = ShardId::new(id);
                    let log = Rc::new(Log::new(wal, LogState::new(id), 1 << 20));
                    let limits = GroupLimits::of(&args, peers.len());
                    let groups = Rc::new(GroupService::new(
                        Coordinator::default(),
                        log.clone(),
                        limits,
                    ));
                    let transactions = Rc::new(TxnService::new(
                        TxnCoordinator::default(),
                        log.clone(),
                        TxnLimits::of(&args, peers.len()),
                    ));
                    let lifecycle = Rc::new(Lifecycle::default());
                    let owners = ShardOwners {
                        log,
                        groups,
                        transactions,
                    };
                    let shard = Rc::new(Shard::new(
                        id,
                        args,
                        "bench".into(),
                        owners,
                        lifecycle,
                        peers,
                    ));
                    let runner = shard.clone();
                    let jobs = glommio::spawn_local(async move {
                        while let Ok(job) = rx.recv_async().await {
                            glommio::spawn_local(job(runner.clone())).detach();
                        }
                    })
                    .detach();
                    if id == ShardId::new(0) {
                        // Let shard 1 start its job runner.
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                        let mut samples = Vec::with_capacity(rounds);
                        for _ in 0..rounds {
                            let t = Instant::now();
                            shard
                                .call(ShardId::new(1), |s| async move { s.id() })
                                .await
                                .unwrap();
                            samples.push(t.elapsed().as_secs_f64() * 1e6);
                        }
                        done.send(samples).unwrap();
                    } else {
                        let _ = jobs.await;
                    }
                })
                .unwrap(),
        );
    }
    let mut samples = done_rx.recv().unwrap();
    // The executors stay parked until the process exits.
    std::mem::forget(handles);
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples
}
