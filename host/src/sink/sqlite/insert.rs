//! A multi-row INSERT on the writer's connection that binds message text without copying it.
//!
//! rusqlite binds text as `SQLITE_TRANSIENT`: SQLite copies every string (malloc, memcpy,
//! free) before it builds the row, on the writer's critical path. [`Insert`] binds it as
//! `SQLITE_STATIC`: SQLite reads the text in place. That is sound only while the text outlives
//! SQLite's use of it, so [`Insert::run`] binds every parameter, steps the statement to its
//! end, then resets it and clears its bindings before it returns: no pointer into the caller's
//! records survives the call.

use std::ffi::{CStr, CString, c_int};
use std::ptr::{self, NonNull};

use rusqlite::ffi;

use crate::message::Record;

/// Parameters bound per row: message, created_at, producer, seq.
pub const PARAMS_PER_ROW: usize = 4;

/// One prepared `INSERT ... VALUES (?,?,?,?,run), ...` of a fixed number of rows.
#[derive(Debug)]
pub struct Insert {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
    rows: usize,
}

// SAFETY: the statement belongs to one connection opened with SQLITE_OPEN_NO_MUTEX
// (multi-thread mode), where a connection and its statements may move between threads as long
// as no two threads use them at once. `Insert` is used only through `&mut self` by the writer
// that owns it (behind its mutex), so uses never overlap.
unsafe impl Send for Insert {}

impl Insert {
    /// Prepares `sql`, which inserts `rows` rows.
    ///
    /// # Safety
    /// `db` must be an open connection that outlives the returned `Insert`, used by one thread
    /// at a time together with it.
    pub unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str, rows: usize) -> rusqlite::Result<Self> {
        let db = NonNull::new(db).ok_or(rusqlite::Error::InvalidQuery)?;
        let sql = CString::new(sql).map_err(rusqlite::Error::NulError)?;
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is open (the caller's contract); `sql` is NUL-terminated and lives for
        // the call; `stmt` is a valid out-pointer. A -1 length reads up to the NUL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(Self { stmt, db, rows })
    }

    /// How many rows one run inserts.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inserts exactly [`Insert::rows`] rows taken from `records` (fewer records than that is
    /// an error and inserts nothing).
    ///
    /// # Errors
    /// SQLite's, as a [`rusqlite::Error`].
    pub fn run<'m>(&mut self, records: impl Iterator<Item = &'m Record>) -> rusqlite::Result<()> {
        let result = self.bind_and_step(records);
        // SAFETY: `self.stmt` is a live statement of `self.db`. Reset ends the step (its
        // error, if any, was already taken from the step); clearing drops every pointer into
        // the records bound above, which may be freed once this returns.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
        result
    }

    fn bind_and_step<'m>(
        &mut self,
        records: impl Iterator<Item = &'m Record>,
    ) -> rusqlite::Result<()> {
        let stmt = self.stmt.as_ptr();
        let mut bound = 0;
        for (r, m) in records.take(self.rows).enumerate() {
            let i = (r * PARAMS_PER_ROW) as c_int + 1;
            let len = i64::try_from(m.text.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
            prefetch(m.text.as_bytes());
            // SAFETY: `stmt` is live and `i..i+3` are parameter indexes of its row `r` (the
            // statement has `rows * 4` parameters and `r < rows`). The text pointer is valid
            // for `len` bytes of UTF-8 for as long as SQLite may read it: `run` clears these
            // bindings before it returns, while `m` is still borrowed (SQLITE_STATIC).
            let rc = unsafe {
                let mut rc = ffi::sqlite3_bind_text64(
                    stmt,
                    i,
                    m.text.as_ptr().cast(),
                    len as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                );
                if rc == ffi::SQLITE_OK {
                    rc = ffi::sqlite3_bind_int64(stmt, i + 1, m.created_at);
                }
                if rc == ffi::SQLITE_OK {
                    rc = ffi::sqlite3_bind_int64(stmt, i + 2, i64::from(m.producer));
                }
                if rc == ffi::SQLITE_OK {
                    rc = ffi::sqlite3_bind_int64(stmt, i + 3, m.seq as i64);
                }
                rc
            };
            if rc != ffi::SQLITE_OK {
                return Err(error(self.db, rc));
            }
            bound += 1;
        }
        if bound != self.rows {
            return Err(rusqlite::Error::InvalidParameterCount(bound, self.rows));
        }
        // SAFETY: `stmt` is live with every parameter bound to data that outlives this call.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        if rc != ffi::SQLITE_DONE {
            return Err(error(self.db, rc));
        }
        Ok(())
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        // SAFETY: `self.stmt` is live and is never used again; the connection is still open
        // (the writer drops its statements before its connection).
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// Asks the CPU to start fetching the first and last cache line of `bytes` (x86-64
/// `PREFETCHT0`; nothing elsewhere). The writer binds a statement's rows before it steps it,
/// and SQLite then copies each row's text into the row it builds: text built on another core
/// (a producer's) would otherwise miss the cache there, one row at a time.
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(last) = bytes.last() {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `PREFETCHT0` is a hint: it reads no memory architecturally and never
        // faults; both addresses are inside `bytes` anyway. SSE is baseline on x86-64.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(last).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// SQLite's error for `rc` on `db`, with its message.
fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is open; sqlite3_errmsg returns a NUL-terminated string owned by SQLite,
    // valid until the next call on this connection, copied out at once.
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
        .to_string_lossy()
        .into_owned();
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(msg))
}
