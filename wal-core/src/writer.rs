//! The WAL of one shard and its group commit.
//!
//! Appends are encoded straight into an aligned buffer (a chunk). A flush
//! takes every sealed chunk, pads the last one to the next [`BLOCK`] with a
//! padding frame, writes them with direct I/O and issues one `fdatasync`.
//! Appends that arrive while a flush is in flight go into new chunks and ride
//! the next flush. Up to `max_flushes_in_flight` flushes run at once, since
//! the disk completes several syncs in parallel about as fast as one.
//!
//! Acknowledgement is prefix-ordered: the durable position only moves over
//! flushes that completed *and* whose predecessors all completed, so a later
//! flush finishing first never acknowledges data behind a hole.
//!
//! A segment is rolled only when every flush to it is durable, so a torn
//! tail can only ever be in the last segment (recovery relies on this).
//!
//! A failed write or sync poisons the log: the kernel may have dropped the
//! dirty pages, so retrying the sync could report success for lost data.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use glommio::io::{DmaBuffer, DmaFile};

use crate::error::{Result, WalError};
use crate::format::{
    align_up, encode_frame, encode_padding, frame_disk_len, segment_file_name, BLOCK,
    DURABLE_MARK_LEN, FIRST_USER_FRAME_TYPE, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::histogram::{Histogram, COUNT_BUCKETS, LATENCY_BUCKETS};
use crate::recovery::{scan_from, RecoveredFrame, RecoveryMode, RecoveryReport};
use crate::segment::{
    absolute, create_dir_durably, create_segment, install_spare, move_aside, open_segment,
    open_segment_read, prepare_spare, remove_spares, save_tail_aside, sync_dir,
};

/// Settings of a WAL. Defaults suit a broker shard.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment is rolled once the next frame would take it past this size.
    pub segment_size: u64,
    /// Largest payload accepted by append.
    pub max_frame_len: usize,
    /// Flushes (write + fdatasync) allowed in flight at once.
    pub max_flushes_in_flight: usize,
    /// Capacity of one aligned append buffer; a larger frame gets its own.
    pub write_buffer_size: usize,
    /// What recovery does with corruption outside the last segment's tail.
    pub recovery_mode: RecoveryMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 256 << 20,
            max_frame_len: 128 << 20,
            max_flushes_in_flight: 4,
            write_buffer_size: 4 << 20,
            recovery_mode: RecoveryMode::Strict,
        }
    }
}

/// Counters of the log, for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Frames appended (padding not counted).
    pub frames: u64,
    /// Payload bytes appended.
    pub payload_bytes: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// `fdatasync` calls completed for flushes.
    pub syncs: u64,
    /// Direct-I/O writes completed for flushes.
    pub writes: u64,
    /// Bytes written by flushes (frames, alignment and padding).
    pub bytes_written: u64,
    /// Bytes of padding frames written to reach block boundaries.
    pub padding_bytes: u64,
    /// Most flushes seen in flight at once.
    pub peak_flushes_in_flight: u64,
    /// Segments created since open.
    pub segments_created: u64,
    /// Every byte below this position is durable.
    pub durable_position: u64,
    /// Position the next frame will get (after alignment).
    pub end_position: u64,
}

/// The write-ahead log of one shard. Cheap to clone (a shared handle); used
/// only from the glommio executor that opened it.
#[derive(Clone)]
pub struct Wal {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    opts: WalOptions,
    st: RefCell<State>,
}

/// An aligned buffer of frames bound for one place in one segment.
struct Chunk {
    segment: u64,
    offset: u64,
    buf: DmaBuffer,
    len: usize,
}

struct Flush {
    end: u64,
    done: bool,
}

struct State {
    /// Seconds each flush's fdatasync took.
    sync_seconds: Histogram,
    /// Frames each flush carried (the group-commit size).
    flush_frames: Histogram,
    /// Frames appended when the last flush was planned.
    frames_planned: u64,
    /// Position of the next frame.
    next_pos: u64,
    /// Segment that appends go to (may not be created yet).
    append_segment: u64,
    active: Option<Chunk>,
    sealed: VecDeque<Chunk>,
    /// Segment the flushes write to, and its file.
    open_segment: u64,
    open_file: Rc<DmaFile>,
    /// Every segment by base, with a cached file handle once opened.
    segments: BTreeMap<u64, Option<Rc<DmaFile>>>,
    /// Flushes issued and not yet retired, in position order.
    flushes: VecDeque<Flush>,
    /// Flushes running, plus a segment being created.
    in_flight: usize,
    flush_scheduled: bool,
    durable: u64,
    /// Tasks waiting for a position to become durable: (end, ticket) -> waker.
    waiters: BTreeMap<(u64, u64), Waker>,
    next_ticket: u64,
    failed: Option<String>,
    /// Tasks waiting in [`Wal::failure`].
    failure_waiters: Vec<Waker>,
    /// The next segment's file (and path) with its space reserved, ready
    /// for a roll.
    spare: Option<(Rc<DmaFile>, PathBuf)>,
    /// The spare taken by the roll that appends are waiting for.
    rolling_to: Option<(Rc<DmaFile>, PathBuf)>,
    /// Number of the next spare file.
    next_spare: u64,
    /// A task is preparing the spare.
    preparing: bool,
    /// Why the last attempt to prepare the spare failed (the disk is full):
    /// appends that need a new segment are refused until one succeeds.
    no_space: Option<String>,
    stats: WalStats,
}

/// A frame handed to the log: where it went, and a future that resolves
/// once it (and everything before it) is durable.
pub struct Appended {
    /// WAL position of the frame.
    pub position: u64,
    /// Base position of the segment it is in.
    pub segment: u64,
    /// Bytes the frame occupies on disk.
    pub disk_len: u64,
    /// Resolves when the frame is durable, or fails if the log failed.
    pub durable: Durable,
}

/// Future resolving when every byte below a position is durable.
pub struct Durable {
    inner: Rc<Inner>,
    end: u64,
    ticket: Option<u64>,
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let end = self.end;
        let inner = self.inner.clone();
        let mut st = inner.st.borrow_mut();
        if st.durable >= end {
            return Poll::Ready(Ok(()));
        }
        if let Some(why) = &st.failed {
            return Poll::Ready(Err(WalError::Failed(why.clone())));
        }
        let ticket = match self.ticket {
            Some(t) => t,
            None => {
                let t = st.next_ticket;
                st.next_ticket += 1;
                self.ticket = Some(t);
                t
            }
        };
        st.waiters.insert((end, ticket), cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            if let Ok(mut st) = self.inner.st.try_borrow_mut() {
                st.waiters.remove(&(self.end, t));
            }
        }
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`: recovers every frame through
    /// `visitor`, cuts a torn tail, and leaves the log ready for appends.
    pub async fn open<F>(dir: &Path, opts: WalOptions, visitor: F) -> Result<(Wal, RecoveryReport)>
    where
        F: FnMut(RecoveredFrame<'_>),
    {
        Wal::open_from(dir, opts, 0, visitor).await
    }

    /// As [`Wal::open`], recovering only the frames from position `from`
    /// on (see [`crate::recovery::scan_from`]): what is below was
    /// checkpointed by the caller.
    pub async fn open_from<F>(
        dir: &Path,
        opts: WalOptions,
        from: u64,
        visitor: F,
    ) -> Result<(Wal, RecoveryReport)>
    where
        F: FnMut(RecoveredFrame<'_>),
    {
        if opts.segment_size < SEGMENT_HEADER_LEN + BLOCK
            || opts.max_frame_len as u64 > u64::from(u32::MAX)
            || opts.max_flushes_in_flight == 0
            || opts.write_buffer_size == 0
        {
            return Err(WalError::Invalid(format!("unusable WAL options {opts:?}")));
        }
        let dir = &absolute(dir)?;
        create_dir_durably(dir)?;
        remove_spares(dir)?;
        let report = scan_from(dir, opts.recovery_mode, from, visitor).await?;
        let mut segments: BTreeMap<u64, Option<Rc<DmaFile>>> =
            report.segments.iter().map(|s| (s.base, None)).collect();

        let (open_base, file, next_pos) = match report.segments.last() {
            None => {
                let file = create_segment(dir, 0).await?;
                (0, file, SEGMENT_HEADER_LEN)
            }
            Some(last) if !last.header_valid => {
                // Died while creating this segment: it holds no frame (recovery
                // checked). Its bytes go aside, not away.
                let aside = move_aside(dir, &last.path)?;
                tracing::warn!(segment = %last.path.display(), aside = %aside.display(), "segment with a torn header moved aside");
                let file = create_segment(dir, last.base).await?;
                (last.base, file, last.base + SEGMENT_HEADER_LEN)
            }
            Some(last) => {
                let file = open_segment(&last.path).await?;
                if last.file_len > last.valid_end {
                    // Old bytes past the valid end must go before anything new is
                    // written, or a later recovery could read them as frames;
                    // they were never acknowledged, and are kept aside.
                    if let Some(aside) = save_tail_aside(dir, &last.path, last.valid_end)? {
                        tracing::warn!(segment = %last.path.display(), from = last.valid_end, aside = %aside.display(), "torn tail saved aside before cutting it");
                    }
                    file.truncate(last.valid_end).await.map_err(|e| {
                        WalError::io(format!("truncating {}", last.path.display()), e)
                    })?;
                }
                // What recovery read may still sit in the device cache.
                file.fdatasync()
                    .await
                    .map_err(|e| WalError::io(format!("syncing {}", last.path.display()), e))?;
                if last.valid_end % BLOCK == 0 {
                    (last.base, file, last.base + last.valid_end)
                } else {
                    // The valid data ends inside a block: continuing would rewrite it.
                    let base = last.base + align_up(last.valid_end, BLOCK);
                    segments.insert(last.base, Some(file));
                    let file = create_segment(dir, base).await?;
                    (base, file, base + SEGMENT_HEADER_LEN)
                }
            }
        };
        segments.insert(open_base, Some(file.clone()));
        let st = State {
            sync_seconds: Histogram::new(LATENCY_BUCKETS),
            flush_frames: Histogram::new(COUNT_BUCKETS),
            frames_planned: 0,
            next_pos,
            append_segment: open_base,
            active: None,
            sealed: VecDeque::new(),
            open_segment: open_base,
            open_file: file,
            segments,
            flushes: VecDeque::new(),
            in_flight: 0,
            flush_scheduled: false,
            durable: next_pos,
            waiters: BTreeMap::new(),
            next_ticket: 0,
            failed: None,
            failure_waiters: Vec::new(),
            spare: None,
            rolling_to: None,
            next_spare: 0,
            preparing: false,
            no_space: None,
            stats: WalStats {
                durable_position: next_pos,
                end_position: next_pos,
                ..WalStats::default()
            },
        };
        let wal = Wal {
            inner: Rc::new(Inner {
                dir: dir.to_path_buf(),
                opts,
                st: RefCell::new(st),
            }),
        };
        // The first spare is ready (or the disk known full) before any
        // append; on a full disk the log opens and keeps trying.
        if !prepare_once(&wal.inner).await {
            glommio::spawn_local(prepare(wal.inner.clone())).detach();
        }
        Ok((wal, report))
    }

    /// Appends a frame whose payload is the concatenation of `parts` and
    /// returns at once; await [`Appended::durable`] before acknowledging it.
    /// Positions follow the order of calls.
    pub fn submit(&self, frame_type: u8, parts: &[&[u8]]) -> Result<Appended> {
        if frame_type < FIRST_USER_FRAME_TYPE {
            return Err(WalError::Invalid(format!(
                "frame type {frame_type} is reserved by the WAL"
            )));
        }
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        if payload_len > self.inner.opts.max_frame_len {
            return Err(WalError::Invalid(format!(
                "frame of {payload_len} bytes exceeds the maximum of {}",
                self.inner.opts.max_frame_len
            )));
        }
        let disk_len = frame_disk_len(payload_len);
        let (position, segment) = {
            let mut st = self.inner.st.borrow_mut();
            if let Some(why) = &st.failed {
                return Err(WalError::Failed(why.clone()));
            }
            let in_segment = st.next_pos - st.append_segment;
            if in_segment > SEGMENT_HEADER_LEN
                && in_segment + disk_len > self.inner.opts.segment_size
            {
                // The next segment's space must be there before a frame is
                // promised to it: on a full disk the frame is refused now,
                // nothing changed, and the client retries. A spare still
                // being prepared (a moment after the last roll) is not
                // waited for: the roll creates the segment itself.
                if st.spare.is_none() {
                    if let Some(why) = &st.no_space {
                        return Err(WalError::NoSpace(why.clone()));
                    }
                } else if st.rolling_to.is_none() {
                    // (With a roll still waiting for its spare, this one
                    // creates its segment itself; the spare stays.)
                    st.rolling_to = st.spare.take();
                }
                st.seal_active();
                let base = st.next_pos;
                st.append_segment = base;
                st.next_pos = base + SEGMENT_HEADER_LEN;
            }
            if st
                .active
                .as_ref()
                .is_some_and(|c| (c.len as u64 + disk_len) as usize > c.buf.len())
            {
                st.seal_active();
            }
            if st.active.is_none() {
                let capacity =
                    (self.inner.opts.write_buffer_size as u64).max(align_up(disk_len, BLOCK));
                let capacity = align_up(capacity, BLOCK) as usize;
                st.active = Some(Chunk {
                    segment: st.append_segment,
                    offset: st.next_pos - st.append_segment,
                    buf: glommio::allocate_dma_buffer(capacity),
                    len: 0,
                });
            }
            let position = st.next_pos;
            let chunk = st
                .active
                .as_mut()
                .expect("an active chunk was just ensured");
            let at = chunk.len;
            encode_frame(
                &mut chunk.buf.as_bytes_mut()[at..at + disk_len as usize],
                position,
                frame_type,
                parts,
            );
            chunk.len += disk_len as usize;
            st.next_pos += disk_len;
            st.stats.frames += 1;
            st.stats.payload_bytes += payload_len as u64;
            (position, st.append_segment)
        };
        schedule_flush(&self.inner);
        Ok(Appended {
            position,
            segment,
            disk_len,
            durable: Durable {
                inner: self.inner.clone(),
                end: position + (FRAME_HEADER_LEN + payload_len) as u64,
                ticket: None,
            },
        })
    }

    /// Appends a frame and waits until it is durable; returns its position.
    pub async fn append(&self, frame_type: u8, payload: &[u8]) -> Result<u64> {
        let appended = self.submit(frame_type, &[payload])?;
        appended.durable.await?;
        Ok(appended.position)
    }

    /// Waits until everything appended so far is durable.
    pub async fn sync(&self) -> Result<()> {
        let end = self.inner.st.borrow().next_pos;
        Durable {
            inner: self.inner.clone(),
            end,
            ticket: None,
        }
        .await
    }

    /// Counters of the log.
    pub fn stats(&self) -> WalStats {
        let st = self.inner.st.borrow();
        WalStats {
            durable_position: st.durable,
            end_position: st.next_pos,
            ..st.stats
        }
    }

    /// Resolves with the reason once a write or sync has failed and the log
    /// accepts nothing more, so its owner can stop instead of answering
    /// errors forever.
    pub fn failure(&self) -> impl Future<Output = String> {
        let inner = self.inner.clone();
        std::future::poll_fn(move |cx| {
            let mut st = inner.st.borrow_mut();
            match &st.failed {
                Some(why) => Poll::Ready(why.clone()),
                None => {
                    st.failure_waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }

    /// Fails the log as a failed write or sync would: a fault injected by
    /// tests of what the log's owner does then.
    #[doc(hidden)]
    pub fn inject_failure(&self, why: &str) {
        self.inner.st.borrow_mut().fail(why.to_string());
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Every byte below this position is durable (and readable).
    pub fn durable_position(&self) -> u64 {
        self.inner.st.borrow().durable
    }

    /// Seconds each flush's fdatasync took, and frames each flush
    /// carried, so far.
    pub fn flush_histograms(&self) -> (Histogram, Histogram) {
        let st = self.inner.st.borrow();
        (st.sync_seconds.clone(), st.flush_frames.clone())
    }

    /// Flushes (write + fdatasync) running now.
    pub fn flushes_in_flight(&self) -> usize {
        self.inner.st.borrow().in_flight
    }

    /// Whether a failed write or sync has poisoned the log.
    pub fn has_failed(&self) -> bool {
        self.inner.st.borrow().failed.is_some()
    }

    /// The base position of every segment, oldest first (the last is the
    /// one appends go to, or will once it is created).
    pub fn segments(&self) -> Vec<u64> {
        let st = self.inner.st.borrow();
        let mut bases: Vec<u64> = st.segments.keys().copied().collect();
        if bases.last() != Some(&st.append_segment) {
            bases.push(st.append_segment);
        }
        bases
    }

    /// Bytes of log positions from the first segment to the end: what the
    /// segments hold (their reserved, unwritten tails and the spare not
    /// counted).
    pub fn disk_bytes(&self) -> u64 {
        let st = self.inner.st.borrow();
        let first = st
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(st.append_segment);
        st.next_pos - first
    }

    /// Bytes left in the segment being appended to when the disk has no
    /// room for the next one, else `None` (no limit). A user keeps some of
    /// it for the frames that free space.
    pub fn headroom(&self) -> Option<u64> {
        let st = self.inner.st.borrow();
        if st.spare.is_some() || st.no_space.is_none() {
            return None;
        }
        let used = st.next_pos - st.append_segment;
        Some(self.inner.opts.segment_size.saturating_sub(used))
    }

    /// The segment size segments roll at.
    pub fn segment_size(&self) -> u64 {
        self.inner.opts.segment_size
    }

    /// Removes every whole segment that lies entirely below `position`
    /// (retention), oldest first, syncing the directory after each, so a
    /// crash or power cut can only leave a shorter prefix removed, never a
    /// hole (which recovery reports as a missing segment). The segment
    /// being written is never removed. Returns the number removed.
    pub async fn delete_segments_below(&self, position: u64) -> Result<usize> {
        let doomed: Vec<u64> = {
            let st = self.inner.st.borrow();
            let bases: Vec<u64> = st.segments.keys().copied().collect();
            bases
                .windows(2)
                .filter(|w| w[1] <= position && w[0] != st.open_segment)
                .map(|w| w[0])
                .collect()
        };
        for base in &doomed {
            let path = self.inner.dir.join(segment_file_name(*base));
            self.inner.st.borrow_mut().segments.remove(base);
            // Freeing a large file's blocks takes milliseconds: not on the
            // shard's thread.
            let unlinked = path.clone();
            glommio::executor()
                .spawn_blocking(move || std::fs::remove_file(unlinked))
                .await
                .map_err(|e| WalError::io(format!("removing {}", path.display()), e))?;
            sync_dir(&self.inner.dir).await?;
            tracing::info!(segment = %path.display(), "removed a segment nothing needs");
        }
        Ok(doomed.len())
    }

    /// The file holding `position` and the segment's base.
    pub(crate) async fn segment_for(&self, position: u64) -> Result<(u64, Rc<DmaFile>)> {
        let (base, cached) = {
            let st = self.inner.st.borrow();
            if position >= st.durable {
                return Err(WalError::Invalid(format!(
                    "position {position} is not durable yet (durable up to {})",
                    st.durable
                )));
            }
            match st.segments.range(..=position).next_back() {
                Some((base, file)) => (*base, file.clone()),
                None => {
                    return Err(WalError::Invalid(format!(
                        "position {position} is below the first segment"
                    )))
                }
            }
        };
        if let Some(file) = cached {
            return Ok((base, file));
        }
        let file = open_segment_read(&self.inner.dir.join(segment_file_name(base))).await?;
        if let Some(slot) = self.inner.st.borrow_mut().segments.get_mut(&base) {
            *slot = Some(file.clone());
        }
        Ok((base, file))
    }
}

impl State {
    /// Closes the active chunk: pads it to a block boundary so the next flush
    /// starts on a fresh block and never rewrites this one. The padding
    /// carries the durable mark; a gap too small for it grows by a block
    /// when the buffer has room.
    fn seal_active(&mut self) {
        let Some(mut chunk) = self.active.take() else {
            return;
        };
        let mut aligned = align_up(chunk.len as u64, BLOCK) as usize;
        let gap = aligned - chunk.len;
        if gap > 0
            && gap < FRAME_HEADER_LEN + DURABLE_MARK_LEN
            && aligned + BLOCK as usize <= chunk.buf.len()
        {
            aligned += BLOCK as usize;
        }
        if aligned > chunk.len {
            let position = chunk.segment + chunk.offset + chunk.len as u64;
            encode_padding(
                &mut chunk.buf.as_bytes_mut()[chunk.len..aligned],
                position,
                self.durable,
            );
            self.stats.padding_bytes += (aligned - chunk.len) as u64;
            chunk.len = aligned;
        }
        self.next_pos = chunk.segment + chunk.offset + aligned as u64;
        self.sealed.push_back(chunk);
    }

    fn fail(&mut self, why: String) {
        tracing::error!(error = %why, "WAL failed; no further writes are accepted");
        self.failed.get_or_insert(why);
        for (_, waker) in std::mem::take(&mut self.waiters) {
            waker.wake();
        }
        for waker in std::mem::take(&mut self.failure_waiters) {
            waker.wake();
        }
    }

    fn wake_durable(&mut self) {
        while let Some(entry) = self.waiters.first_entry() {
            if entry.key().0 > self.durable {
                break;
            }
            entry.remove().wake();
        }
    }
}

/// Starts a flush task unless one is scheduled, nothing waits, or the
/// in-flight limit is reached (a completing flush calls this again).
fn schedule_flush(inner: &Rc<Inner>) {
    let mut st = inner.st.borrow_mut();
    if st.flush_scheduled
        || st.failed.is_some()
        || (st.active.is_none() && st.sealed.is_empty())
        || st.in_flight >= inner.opts.max_flushes_in_flight
    {
        return;
    }
    st.flush_scheduled = true;
    drop(st);
    glommio::spawn_local(flush(inner.clone())).detach();
}

/// What a flush task does next.
enum Plan {
    Nothing,
    /// Create the segment at this base; all flushes to the old one are durable.
    Roll(u64),
    /// Write these chunks to the open segment and sync; durable up to `end`.
    Write {
        file: Rc<DmaFile>,
        chunks: Vec<Chunk>,
        end: u64,
    },
}

impl State {
    fn plan_flush(&mut self, max_in_flight: usize) -> Plan {
        self.flush_scheduled = false;
        if self.failed.is_some() || self.in_flight >= max_in_flight {
            return Plan::Nothing;
        }
        self.seal_active();
        let Some(head) = self.sealed.front().map(|c| c.segment) else {
            return Plan::Nothing;
        };
        if head != self.open_segment {
            // Roll only once every byte of the old segment is durable; the
            // last flush to complete schedules this again.
            if self.in_flight > 0 {
                return Plan::Nothing;
            }
            self.in_flight += 1;
            return Plan::Roll(head);
        }
        let mut chunks = Vec::new();
        while self.sealed.front().is_some_and(|c| c.segment == head) {
            chunks.extend(self.sealed.pop_front());
        }
        let end = chunks
            .last()
            .map_or(0, |c| c.segment + c.offset + c.len as u64);
        self.flushes.push_back(Flush { end, done: false });
        let frames = self.stats.frames - self.frames_planned;
        self.frames_planned = self.stats.frames;
        self.flush_frames.observe(frames as f64);
        self.in_flight += 1;
        self.stats.peak_flushes_in_flight =
            self.stats.peak_flushes_in_flight.max(self.in_flight as u64);
        Plan::Write {
            file: self.open_file.clone(),
            chunks,
            end,
        }
    }

    fn flush_done(&mut self, end: u64, writes: u64, bytes: u64, result: Result<Duration>) {
        self.in_flight -= 1;
        match result {
            Err(e) => {
                self.fail(e.to_string());
                return;
            }
            Ok(sync) => self.sync_seconds.observe(sync.as_secs_f64()),
        }
        self.stats.flushes += 1;
        self.stats.syncs += 1;
        self.stats.writes += writes;
        self.stats.bytes_written += bytes;
        if let Some(f) = self.flushes.iter_mut().find(|f| f.end == end) {
            f.done = true;
        }
        while let Some(f) = self.flushes.front() {
            if !f.done {
                break;
            }
            self.durable = f.end;
            self.flushes.pop_front();
        }
        self.wake_durable();
    }

    fn rolled(&mut self, base: u64, created: Result<Rc<DmaFile>>) {
        self.in_flight -= 1;
        match created {
            Ok(file) => {
                self.open_segment = base;
                self.open_file = file.clone();
                self.segments.insert(base, Some(file));
                self.stats.segments_created += 1;
                tracing::debug!(base, "rolled to a new segment");
            }
            Err(e) => self.fail(e.to_string()),
        }
    }
}

async fn flush(inner: Rc<Inner>) {
    // glommio may start a spawned task straight away; yield once so the
    // tasks already runnable append first and their frames join this flush.
    futures_lite::future::yield_now().await;
    let plan = inner
        .st
        .borrow_mut()
        .plan_flush(inner.opts.max_flushes_in_flight);
    match plan {
        Plan::Nothing => return,
        Plan::Roll(base) => {
            let spare = inner.st.borrow_mut().rolling_to.take();
            let created = match spare {
                Some(spare) => install_spare(&inner.dir, spare, base).await,
                None => create_segment(&inner.dir, base).await,
            };
            inner.st.borrow_mut().rolled(base, created);
            glommio::spawn_local(prepare(inner.clone())).detach();
        }
        Plan::Write { file, chunks, end } => {
            // Another flush may start while this one runs.
            schedule_flush(&inner);
            let bytes: u64 = chunks.iter().map(|c| c.len as u64).sum();
            let writes = chunks.len() as u64;
            let result = write_and_sync(&file, chunks).await;
            inner.st.borrow_mut().flush_done(end, writes, bytes, result);
        }
    }
    schedule_flush(&inner);
}

/// How long a full disk is left alone before the spare is tried again.
const NO_SPACE_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Prepares the spare segment unless there is one (or a task is at it);
/// while the disk is full, tries again every [`NO_SPACE_RETRY`] until it
/// fits, so appends resume without a restart once space is freed.
async fn prepare(inner: Rc<Inner>) {
    {
        let mut st = inner.st.borrow_mut();
        if st.preparing || st.spare.is_some() {
            return;
        }
        st.preparing = true;
    }
    while !prepare_once(&inner).await && inner.st.borrow().failed.is_none() {
        glommio::timer::sleep(NO_SPACE_RETRY).await;
    }
    inner.st.borrow_mut().preparing = false;
}

/// One attempt at the spare; whether there is one now.
async fn prepare_once(inner: &Rc<Inner>) -> bool {
    let n = {
        let mut st = inner.st.borrow_mut();
        st.next_spare += 1;
        st.next_spare
    };
    let prepared = prepare_spare(&inner.dir, inner.opts.segment_size, n).await;
    let mut st = inner.st.borrow_mut();
    match prepared {
        Ok(file) => {
            if let Some(why) = st.no_space.take() {
                tracing::info!(dir = %inner.dir.display(), was = why, "space for the next WAL segment again: appends resume");
            }
            st.spare = Some(file);
            true
        }
        Err(e) => {
            if st.no_space.is_none() {
                tracing::error!(dir = %inner.dir.display(), error = %e, "no space for the next WAL segment: appends that need it are refused until space is freed");
            }
            st.no_space = Some(e.to_string());
            false
        }
    }
}

/// Writes the chunks (concurrently) and then syncs the file once;
/// returns how long the sync took.
async fn write_and_sync(file: &Rc<DmaFile>, chunks: Vec<Chunk>) -> Result<Duration> {
    let mut tasks = Vec::with_capacity(chunks.len());
    for mut chunk in chunks {
        let file = file.clone();
        tasks.push(glommio::spawn_local(async move {
            chunk.buf.trim_to_size(chunk.len);
            let written = file.write_at(chunk.buf, chunk.offset).await;
            (chunk.offset, chunk.len, written)
        }));
    }
    let mut first_error = None;
    for task in tasks {
        let (offset, len, written) = task.await;
        let problem = match written {
            Ok(n) if n == len => None,
            Ok(n) => Some(format!(
                "short write at offset {offset}: {n} of {len} bytes (is the disk full?)"
            )),
            Err(e) => Some(format!("write at offset {offset}: {e}")),
        };
        if first_error.is_none() {
            first_error = problem;
        }
    }
    if let Some(why) = first_error {
        return Err(WalError::Failed(why));
    }
    let started = std::time::Instant::now();
    file.fdatasync()
        .await
        .map_err(|e| WalError::Failed(format!("fdatasync: {e}")))?;
    Ok(started.elapsed())
}
