//! hyper's HTTP/2 futures, run inside their connection's own task.
//!
//! hyper hands its executor the connection's I/O future at the handshake
//! and, per request, one future that waits for the response and hands it
//! over, plus one that sends a body not sent with the headers (any body
//! with data: a gRPC call's message). Spawned, each is a tokio task: an
//! allocation, an entry in the runtime's task list, its scheduling, and a
//! teardown. For a unary gRPC call that was two tasks per call: 5% of
//! the client's instructions, and more of its time (each task switch
//! also evicts what the next one needs from the caches).
//!
//! [`ConnExecutor`] queues them instead, and [`Driver`] runs them in the
//! task that already drives the connection's dispatcher, as a
//! `FuturesUnordered`. A response read off the socket then wakes a future
//! of the same task, not another task.
//!
//! Each connection has its own executor (and so its own hyper `Builder`).
//! A future queued while the driver is not being polled (nothing of
//! hyper's does that, but the executor does not rely on it) wakes it.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor of one HTTP/2 connection: queues what hyper spawns for the
/// connection's [`Driver`].
#[derive(Clone, Default)]
pub(crate) struct ConnExecutor(Arc<Inbox>);

impl std::fmt::Debug for ConnExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnExecutor").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inbox {
    state: Mutex<Queued>,
    /// The driver's task, woken for a future queued while it is not
    /// being polled.
    waker: AtomicWaker,
}

#[derive(Default)]
struct Queued {
    tasks: Vec<Task>,
    /// The driver is being polled: it looks at the queue before it returns.
    polling: bool,
}

impl<F> hyper::rt::Executor<F> for ConnExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let wake = {
            let mut state = self.0.state.lock();
            state.tasks.push(Box::pin(fut));
            !state.polling
        };
        if wake {
            self.0.waker.wake();
        }
    }
}

/// Runs a connection's queued futures; polled by the connection's task.
pub(crate) struct Driver {
    inbox: Arc<Inbox>,
    running: FuturesUnordered<Task>,
    /// Kept between polls: taking the queue costs no allocation.
    spare: Vec<Task>,
}

impl Driver {
    pub(crate) fn new(exec: &ConnExecutor) -> Driver {
        Driver {
            inbox: Arc::clone(&exec.0),
            running: FuturesUnordered::new(),
            spare: Vec::new(),
        }
    }

    /// Marks the start of the task's poll: futures queued from now on
    /// (by the dispatcher, polled next) are run before [`Driver::run`]
    /// returns.
    pub(crate) fn begin(&mut self, cx: &Context<'_>) {
        self.inbox.waker.register(cx.waker());
        self.inbox.state.lock().polling = true;
    }

    /// Runs the queued futures and every running one that is ready, until
    /// none is and nothing new was queued. `Ready` when none is left.
    pub(crate) fn run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.running.extend(self.spare.drain(..));
            // Runs the futures that were woken (and the new ones); `Pending`
            // once none is ready (or after a round, to let other tasks run:
            // then it has woken this task again).
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
            let mut state = self.inbox.state.lock();
            if state.tasks.is_empty() {
                state.polling = false;
                break;
            }
            mem::swap(&mut state.tasks, &mut self.spare);
        }
        if self.running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Pending until `gate` is notified, then counts itself `done`.
    async fn gated(gate: Arc<tokio::sync::Notify>, done: Arc<AtomicUsize>) {
        gate.notified().await;
        done.fetch_add(1, Ordering::SeqCst);
    }

    /// A task polling `driver` as a connection's task does.
    fn spawn(mut driver: Driver) -> tokio::task::JoinHandle<()> {
        tokio::spawn(std::future::poll_fn(move |cx| {
            driver.begin(cx);
            driver.run(cx)
        }))
    }

    /// Waits for the driver's task to end (once its futures have).
    async fn ends(drive: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(std::time::Duration::from_secs(5), drive)
            .await
            .expect("the driver ends once its futures have")
            .expect("no panic");
    }

    #[tokio::test]
    async fn queued_futures_run_in_the_driving_task_until_done() {
        let exec = ConnExecutor::default();
        let driver = Driver::new(&exec);
        let gate = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        exec.execute(gated(gate.clone(), done.clone()));
        exec.execute(gated(gate.clone(), done.clone()));
        let drive = spawn(driver);
        // Queued before the driver ran: both wait at the gate.
        tokio::task::yield_now().await;
        assert_eq!(done.load(Ordering::SeqCst), 0);
        assert!(!drive.is_finished());
        gate.notify_waiters();
        ends(drive).await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_future_queued_from_another_task_wakes_the_driver() {
        let exec = ConnExecutor::default();
        let driver = Driver::new(&exec);
        let gate = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        // One future keeps the driver alive.
        exec.execute(gated(gate.clone(), done.clone()));
        let drive = spawn(driver);
        tokio::task::yield_now().await;
        // Queued while the driver sleeps: it must wake to run it.
        let ran = Arc::new(AtomicUsize::new(0));
        let flag = ran.clone();
        exec.execute(async move {
            flag.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while ran.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the late future ran");
        gate.notify_waiters();
        ends(drive).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
