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
//!
//! hyper's futures are all one type per connection, 1.5 KB each; the box
//! of one that ended is kept (up to [`SPARE_SLOTS`] per connection) for the
//! next, so a request costs no large allocation, and the next future is
//! written straight into it (one copy of its 1.5 KB).

use std::any::Any;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// A future in its box. hyper hands all of a connection's futures as one
/// type, sized for the largest (the connection's own I/O, 1.5 KB): a new
/// box per request took malloc's slow path for large blocks each time. A
/// box whose future ended is kept, emptied, for the next future of its
/// type, which is written straight into it.
///
/// hyper's HTTP/2 futures are `Unpin` (they are written-out state machines
/// over `Unpin` parts), so a box needs no pinning: the executor asks for
/// `Unpin`, and a future that is not would fail to compile, not misbehave.
type Slot = Box<dyn Job>;

/// Emptied boxes a connection keeps (at most 48 KB): enough for the
/// requests one batch of responses ends.
const SPARE_SLOTS: usize = 32;

/// `Option<F>` for any future `F` hyper spawns, type-erased.
trait Job: Send {
    /// Polls the future; once it ends, it is dropped (the box stays).
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// The `Option<F>` itself, for the executor to write the next `F` into.
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<F> Job for Option<F>
where
    F: Future<Output = ()> + Send + Unpin + 'static,
{
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(fut) = self {
            std::task::ready!(Pin::new(fut).poll(cx));
            *self = None;
        }
        Poll::Ready(())
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

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
    tasks: Vec<Slot>,
    /// Emptied boxes, for the next futures.
    free: Vec<Slot>,
    /// The driver is being polled: it looks at the queue before it returns.
    polling: bool,
}

impl<F> hyper::rt::Executor<F> for ConnExecutor
where
    F: Future<Output = ()> + Send + Unpin + 'static,
{
    fn execute(&self, fut: F) {
        let wake = {
            let mut state = self.0.state.lock();
            let slot = match state.free.pop() {
                Some(mut slot) => match slot.as_any().downcast_mut::<Option<F>>() {
                    Some(empty) => {
                        *empty = Some(fut);
                        slot
                    }
                    None => {
                        // Another type (an upgraded stream's task): a box
                        // of its own.
                        state.free.push(slot);
                        Box::new(Some(fut))
                    }
                },
                None => Box::new(Some(fut)),
            };
            state.tasks.push(slot);
            !state.polling
        };
        if wake {
            self.0.waker.wake();
        }
    }
}

/// Runs the future in a box; ends with the box, emptied.
struct Run(Option<Slot>);

impl Future for Run {
    type Output = Slot;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        let Some(slot) = self.0.as_mut() else {
            // Already ended (never polled again by `FuturesUnordered`).
            return Poll::Pending;
        };
        std::task::ready!(slot.poll_job(cx));
        match self.0.take() {
            Some(slot) => Poll::Ready(slot),
            None => Poll::Pending,
        }
    }
}

/// Runs a connection's queued futures; polled by the connection's task.
pub(crate) struct Driver {
    inbox: Arc<Inbox>,
    running: FuturesUnordered<Run>,
    /// Kept between polls: taking the queue costs no allocation.
    spare: Vec<Slot>,
    /// Boxes whose futures ended in this poll, given back to the executor.
    ended: Vec<Slot>,
}

impl Driver {
    pub(crate) fn new(exec: &ConnExecutor) -> Driver {
        Driver {
            inbox: Arc::clone(&exec.0),
            running: FuturesUnordered::new(),
            spare: Vec::new(),
            ended: Vec::new(),
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
            let queued = self.spare.drain(..).map(|slot| Run(Some(slot)));
            self.running.extend(queued);
            // Runs the futures that were woken (and the new ones); `Pending`
            // once none is ready (or after a round, to let other tasks run:
            // then it has woken this task again).
            while let Poll::Ready(Some(slot)) = self.running.poll_next_unpin(cx) {
                self.ended.push(slot);
            }
            let mut state = self.inbox.state.lock();
            let room = SPARE_SLOTS.saturating_sub(state.free.len());
            let kept = self.ended.len().min(room);
            state.free.extend(self.ended.drain(..kept));
            self.ended.clear();
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
    fn gated(
        gate: Arc<tokio::sync::Notify>,
        done: Arc<AtomicUsize>,
    ) -> Pin<Box<impl Future<Output = ()> + Send>> {
        Box::pin(async move {
            gate.notified().await;
            done.fetch_add(1, Ordering::SeqCst);
        })
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

    /// Counts a run; the same type at every call.
    fn job(runs: Arc<AtomicUsize>) -> Pin<Box<impl Future<Output = ()> + Send>> {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Where a box's future lives.
    fn address(slot: &Slot) -> *const () {
        let job: &dyn Job = &**slot;
        (job as *const dyn Job).cast()
    }

    /// Polls `driver` once, as its connection's task would (no-op waker).
    fn poll_once(driver: &mut Driver) -> Poll<()> {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        driver.begin(&cx);
        driver.run(&mut cx)
    }

    #[test]
    fn an_ended_futures_box_is_reused_for_the_next_of_its_type() {
        let exec = ConnExecutor::default();
        let mut driver = Driver::new(&exec);
        let runs = Arc::new(AtomicUsize::new(0));

        exec.execute(job(runs.clone()));
        exec.execute(job(runs.clone()));
        assert!(poll_once(&mut driver).is_ready());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let kept: Vec<_> = exec.0.state.lock().free.iter().map(address).collect();
        assert_eq!(kept.len(), 2, "both boxes kept");

        // The next future of that type goes into a kept box.
        exec.execute(job(runs.clone()));
        {
            let state = exec.0.state.lock();
            assert_eq!(state.free.len(), 1);
            assert!(kept.contains(&address(&state.tasks[0])));
        }
        // A future of another type gets its own; the kept box stays.
        let other = runs.clone();
        exec.execute(Box::pin(async move {
            other.fetch_add(10, Ordering::SeqCst);
        }));
        {
            let state = exec.0.state.lock();
            assert_eq!(state.free.len(), 1);
            assert!(!kept.contains(&address(&state.tasks[1])));
        }
        assert!(poll_once(&mut driver).is_ready());
        assert_eq!(runs.load(Ordering::SeqCst), 13);
        assert_eq!(exec.0.state.lock().free.len(), 3);
    }

    #[test]
    fn at_most_spare_slots_boxes_are_kept() {
        let exec = ConnExecutor::default();
        let mut driver = Driver::new(&exec);
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..SPARE_SLOTS + 8 {
            exec.execute(job(runs.clone()));
        }
        assert!(poll_once(&mut driver).is_ready());
        assert_eq!(runs.load(Ordering::SeqCst), SPARE_SLOTS + 8);
        assert_eq!(exec.0.state.lock().free.len(), SPARE_SLOTS);
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
        exec.execute(Box::pin(async move {
            flag.fetch_add(1, Ordering::SeqCst);
        }));
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
