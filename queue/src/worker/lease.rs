//! Lease renewal on a dedicated OS thread with its own runtime and Redis
//! connection, so a handler that hogs or blocks the worker's threads cannot
//! starve it: the lease of a job that is still running never lapses, and no
//! second worker picks it up.

use std::{
    sync::{Arc, atomic::Ordering},
    thread::JoinHandle,
};

use tokio_util::sync::CancellationToken;

use super::{
    loops::Outage,
    run::{Held, WorkerStats},
};
use crate::{options::WorkerOptions, queue::Queue};

/// Starts the renewer thread; it runs until `stop` fires.
pub(crate) fn spawn_renewer(
    queue: Queue,
    options: WorkerOptions,
    held: Arc<Held>,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("hangar-lease-{}", queue.name()))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the lease renewer runtime; leases will lapse");
                    return;
                }
            };
            runtime.block_on(renew_loop(queue, options, held, stats, stop));
        })
}

async fn renew_loop(
    queue: Queue,
    options: WorkerOptions,
    held: Arc<Held>,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) {
    let mut outage = Outage::new("lease");
    // A connection owned by this runtime: the shared one is driven by the worker's.
    let queue = loop {
        let attempt = tokio::select! { r = queue.reconnect() => r, () = stop.cancelled() => return };
        match attempt {
            Ok(q) => break q,
            Err(e) => {
                let (wait, _) = outage.failed(&e, &stats);
                tokio::select! { () = tokio::time::sleep(wait) => {}, () = stop.cancelled() => return }
            }
        }
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(options.heartbeat) => {}
            () = stop.cancelled() => return,
        }
        let leases = held.leases();
        if leases.is_empty() {
            continue;
        }
        let renewed =
            tokio::select! { r = queue.renew(options.lease, &leases) => r, () = stop.cancelled() => return };
        // Replies name job ids; act only on the delivery whose lease was renewed.
        let sent: std::collections::HashMap<&str, &str> = leases
            .iter()
            .map(|(id, token)| (id.as_str(), token.as_str()))
            .collect();
        let delivery = |id: &str| sent.get(id).and_then(|token| held.get_delivery(id, token));
        match renewed {
            Ok((lost, cancel)) => {
                outage.recovered();
                for id in lost {
                    if let Some(run) = delivery(&id) {
                        WorkerStats::add(&stats.leases_lost, 1);
                        tracing::warn!(job.id = %id, "lease lost: the job was handed to another worker; asking the handler to stop");
                        run.lease_lost.store(true, Ordering::Relaxed);
                        run.cancel.cancel();
                    }
                }
                for id in cancel {
                    if let Some(run) = delivery(&id)
                        && !run.cancel_requested.swap(true, Ordering::Relaxed)
                    {
                        tracing::info!(job.id = %id, "cancellation requested; signalling the handler");
                        run.cancel.cancel();
                    }
                }
            }
            Err(e) => {
                outage.failed(&e, &stats);
            }
        }
    }
}
