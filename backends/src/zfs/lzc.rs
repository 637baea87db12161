//! A minimal binding of libzfs_core (and the bits of libnvpair it needs), linked statically by
//! build.rs: libzetta 0.5.0 has no channel programs, and they are the point of this backend.

// FFI to libzfs_core.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::sync::OnceLock;

use crate::BackendError;

#[allow(non_camel_case_types)]
type nvlist_t = c_void;

extern "C" {
    fn libzfs_core_init() -> c_int;
    fn lzc_exists(name: *const c_char) -> c_int;
    fn lzc_snapshot(snaps: *mut nvlist_t, props: *mut nvlist_t, errs: *mut *mut nvlist_t) -> c_int;
    fn lzc_destroy_snaps(snaps: *mut nvlist_t, defer: c_int, errs: *mut *mut nvlist_t) -> c_int;
    fn lzc_clone(fsname: *const c_char, origin: *const c_char, props: *mut nvlist_t) -> c_int;
    fn lzc_rename(source: *const c_char, target: *const c_char) -> c_int;
    fn lzc_promote(fsname: *const c_char, snapnamebuf: *mut c_char, snapnamelen: c_int) -> c_int;
    fn lzc_create(
        fsname: *const c_char,
        kind: c_int,
        props: *mut nvlist_t,
        wkeydata: *mut u8,
        wkeylen: u32,
    ) -> c_int;
    fn lzc_channel_program(
        pool: *const c_char,
        program: *const c_char,
        instrlimit: u64,
        memlimit: u64,
        args: *mut nvlist_t,
        out: *mut *mut nvlist_t,
    ) -> c_int;
    fn lzc_channel_program_nosync(
        pool: *const c_char,
        program: *const c_char,
        instrlimit: u64,
        memlimit: u64,
        args: *mut nvlist_t,
        out: *mut *mut nvlist_t,
    ) -> c_int;
    fn fnvlist_alloc() -> *mut nvlist_t;
    fn nvlist_free(nvl: *mut nvlist_t);
    fn fnvlist_add_boolean(nvl: *mut nvlist_t, name: *const c_char);
    fn fnvlist_add_string(nvl: *mut nvlist_t, name: *const c_char, value: *const c_char);
    fn fnvlist_add_uint64(nvl: *mut nvlist_t, name: *const c_char, value: u64);
    fn nvlist_lookup_string(
        nvl: *mut nvlist_t,
        name: *const c_char,
        value: *mut *mut c_char,
    ) -> c_int;
}

/// The dataset type `lzc_create` wants for a filesystem (`LZC_DATSET_TYPE_ZFS`).
const LZC_DATASET_TYPE_ZFS: c_int = 2;
/// ZFS's defaults (`ZCP_DEFAULT_INSTRLIMIT`, `ZCP_DEFAULT_MEMLIMIT`): ample for a few hundred
/// snapshots, and a runaway program cannot stall the pool.
const INSTR_LIMIT: u64 = 10_000_000;
const MEM_LIMIT: u64 = 10 * 1024 * 1024;

/// An owned nvlist, freed on drop.
struct NvList(*mut nvlist_t);

impl NvList {
    fn new() -> NvList {
        // SAFETY: fnvlist_alloc aborts rather than return NULL.
        NvList(unsafe { fnvlist_alloc() })
    }
    fn add_boolean(&mut self, name: &CStr) {
        // SAFETY: self.0 is a live nvlist; the name is copied.
        unsafe { fnvlist_add_boolean(self.0, name.as_ptr()) }
    }
    fn add_string(&mut self, name: &CStr, value: &CStr) {
        // SAFETY: as above; both strings are copied.
        unsafe { fnvlist_add_string(self.0, name.as_ptr(), value.as_ptr()) }
    }
    fn add_u64(&mut self, name: &CStr, value: u64) {
        // SAFETY: as above.
        unsafe { fnvlist_add_uint64(self.0, name.as_ptr(), value) }
    }
    /// A string member, copied out.
    fn string(&self, name: &CStr) -> Option<String> {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: self.0 is live; on success `out` points into it, and is copied before drop.
        let rc = unsafe { nvlist_lookup_string(self.0, name.as_ptr(), &mut out) };
        (rc == 0 && !out.is_null())
            // SAFETY: nvlist strings are NUL-terminated.
            .then(|| {
                unsafe { CStr::from_ptr(out) }
                    .to_string_lossy()
                    .into_owned()
            })
    }
}

impl Drop for NvList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own the list and free it once.
            unsafe { nvlist_free(self.0) }
        }
    }
}

fn init() -> Result<(), BackendError> {
    static INIT: OnceLock<c_int> = OnceLock::new();
    // SAFETY: opens /dev/zfs once for the process; later calls reuse it.
    let rc = *INIT.get_or_init(|| unsafe { libzfs_core_init() });
    if rc == 0 {
        Ok(())
    } else {
        Err(BackendError::io(
            "cannot open /dev/zfs (libzfs_core_init); load the zfs kernel module",
            io::Error::from_raw_os_error(rc),
        ))
    }
}

fn cstr(s: &str) -> Result<CString, BackendError> {
    CString::new(s)
        .map_err(|_| BackendError::Refused(format!("zfs name {s:?} contains a NUL byte")))
}

fn check(rc: c_int, what: impl FnOnce() -> String) -> Result<(), BackendError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(BackendError::io(what(), io::Error::from_raw_os_error(rc)))
    }
}

/// Whether a pool, dataset or snapshot of this name exists (a pool: whether it is imported).
pub fn exists(name: &str) -> Result<bool, BackendError> {
    init()?;
    let c = cstr(name)?;
    // SAFETY: a NUL-terminated name.
    Ok(unsafe { lzc_exists(c.as_ptr()) } != 0)
}

pub fn snapshot(snap: &str) -> Result<(), BackendError> {
    init()?;
    let mut snaps = NvList::new();
    snaps.add_boolean(&cstr(snap)?);
    let mut errs: *mut nvlist_t = std::ptr::null_mut();
    // SAFETY: live lists; `errs` is ours to free when set.
    let rc = unsafe { lzc_snapshot(snaps.0, std::ptr::null_mut(), &mut errs) };
    drop(NvList(errs));
    check(rc, || format!("cannot create snapshot {snap}"))
}

pub fn destroy_snaps(snaps: &[String]) -> Result<(), BackendError> {
    init()?;
    let mut list = NvList::new();
    for s in snaps {
        list.add_boolean(&cstr(s)?);
    }
    let mut errs: *mut nvlist_t = std::ptr::null_mut();
    // SAFETY: as in `snapshot`.
    let rc = unsafe { lzc_destroy_snaps(list.0, 0, &mut errs) };
    drop(NvList(errs));
    check(rc, || {
        format!("cannot destroy snapshots {}", snaps.join(", "))
    })
}

pub fn clone(fs: &str, origin: &str) -> Result<(), BackendError> {
    init()?;
    let (f, o) = (cstr(fs)?, cstr(origin)?);
    // SAFETY: NUL-terminated names; NULL props are allowed.
    let rc = unsafe { lzc_clone(f.as_ptr(), o.as_ptr(), std::ptr::null_mut()) };
    check(rc, || format!("cannot clone {origin} to {fs}"))
}

pub fn rename(from: &str, to: &str) -> Result<(), BackendError> {
    init()?;
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: NUL-terminated names.
    let rc = unsafe { lzc_rename(f.as_ptr(), t.as_ptr()) };
    check(rc, || format!("cannot rename dataset {from} to {to}"))
}

/// Makes a clone independent of its origin: the origin's snapshots up to the clone point move to
/// `fs`, and the origin becomes a clone of `fs`.
pub fn promote(fs: &str) -> Result<(), BackendError> {
    init()?;
    let f = cstr(fs)?;
    let mut conflict = [0 as c_char; 256];
    // SAFETY: a NUL-terminated name and a buffer of the length passed.
    let rc = unsafe { lzc_promote(f.as_ptr(), conflict.as_mut_ptr(), 256) };
    check(rc, || format!("cannot promote dataset {fs}"))
}

/// Creates a filesystem that is never mounted (`canmount=off`, `mountpoint=none`): a container.
pub fn create_container(fs: &str) -> Result<(), BackendError> {
    init()?;
    let f = cstr(fs)?;
    let mut props = NvList::new();
    props.add_u64(c"canmount", 0);
    props.add_string(c"mountpoint", c"none");
    // SAFETY: NUL-terminated name, live props, no key.
    let rc = unsafe {
        lzc_create(
            f.as_ptr(),
            LZC_DATASET_TYPE_ZFS,
            props.0,
            std::ptr::null_mut(),
            0,
        )
    };
    check(rc, || format!("cannot create dataset {fs}"))
}

/// How a channel program failed: the errno and, when the program raised one, its message.
#[derive(Debug)]
pub struct ProgramError {
    pub errno: i32,
    pub message: Option<String>,
}

/// Runs a channel program on `pool` and returns the string it returned. `sync`: in one sync task
/// (may change things); otherwise read-only, in open context.
pub fn channel_program(pool: &str, program: &str, sync: bool) -> Result<String, BackendError> {
    init()?;
    run_program(pool, program, sync).map_err(|e| match e.message {
        Some(m) => BackendError::Refused(m),
        None => BackendError::io(
            format!("channel program on pool {pool} failed"),
            io::Error::from_raw_os_error(e.errno),
        ),
    })
}

fn run_program(pool: &str, program: &str, sync: bool) -> Result<String, ProgramError> {
    let bad = |_| ProgramError {
        errno: libc::EINVAL,
        message: Some("channel program or pool name contains a NUL byte".into()),
    };
    let (p, prog) = (
        CString::new(pool).map_err(bad)?,
        CString::new(program).map_err(bad)?,
    );
    let args = NvList::new();
    let mut out: *mut nvlist_t = std::ptr::null_mut();
    let f = if sync {
        lzc_channel_program
    } else {
        lzc_channel_program_nosync
    };
    // SAFETY: NUL-terminated strings, a live (empty) argument list; `out` is ours to free.
    let rc = unsafe {
        f(
            p.as_ptr(),
            prog.as_ptr(),
            INSTR_LIMIT,
            MEM_LIMIT,
            args.0,
            &mut out,
        )
    };
    let out = NvList(out);
    let get = |k: &CStr| (!out.0.is_null()).then(|| out.string(k)).flatten();
    if rc == 0 {
        Ok(get(c"return").unwrap_or_default())
    } else {
        Err(ProgramError {
            errno: rc,
            message: get(c"error").map(|m| strip_lua_position(&m)),
        })
    }
}

/// Lua prefixes runtime errors with `[string "channel program"]:12: `; the position means
/// nothing to a user, the message does.
fn strip_lua_position(m: &str) -> String {
    match m.strip_prefix("[string \"channel program\"]:") {
        Some(rest) => rest
            .split_once(": ")
            .map_or(rest, |(_, msg)| msg)
            .to_string(),
        None => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_positions_are_dropped() {
        let cases = [
            ("[string \"channel program\"]:12: refused: x", "refused: x"),
            ("plain message", "plain message"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_lua_position(input), want);
        }
    }
}
