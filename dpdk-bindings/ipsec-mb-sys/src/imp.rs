//! The real thing: bindings, the per-process function table, the per-thread
//! manager and the two key types.

use core::ffi::{c_void, CStr};
use core::ptr::{self, NonNull};
use std::cell::RefCell;
use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::{nonce, tags_equal, AeadBuffer, AeadParts, Arch, Error, IV_LEN, SALT_LEN, TAG_LEN};

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_debug_implementations,
    clippy::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use ffi::{gcm_context_data, gcm_key_data, IMB_JOB, IMB_MGR};

/// Library version string from the header we built against.
pub fn version() -> Option<&'static str> {
    CStr::from_bytes_with_nul(ffi::IMB_VERSION_STR)
        .ok()
        .and_then(|c| c.to_str().ok())
}

/// The arch asked for with `IPSECGW_IPSEC_MB_ARCH`, checked against the CPU
/// (forcing a path the CPU lacks would fault on the first instruction).
fn forced_arch() -> Result<Option<Arch>, Error> {
    let Ok(name) = std::env::var("IPSECGW_IPSEC_MB_ARCH") else {
        return Ok(None);
    };
    let (arch, ok) = match name.as_str() {
        "sse" => (
            Arch::Sse,
            std::arch::is_x86_feature_detected!("sse4.2")
                && std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq"),
        ),
        "avx" => (
            Arch::Avx,
            std::arch::is_x86_feature_detected!("avx")
                && std::arch::is_x86_feature_detected!("aes"),
        ),
        "avx2" => (
            Arch::Avx2,
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("bmi2"),
        ),
        "avx512" => (
            Arch::Avx512,
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq"),
        ),
        "" | "auto" => return Ok(None),
        other => {
            return Err(Error::Arch(format!(
                "unknown arch {other:?} (sse, avx, avx2, avx512, auto)"
            )))
        }
    };
    if ok {
        Ok(Some(arch))
    } else {
        Err(Error::Arch(format!("this CPU cannot run the {arch} path")))
    }
}

fn arch_from_ffi(a: ffi::IMB_ARCH) -> Option<Arch> {
    match a {
        ffi::IMB_ARCH_IMB_ARCH_NOAESNI => Some(Arch::NoAesni),
        ffi::IMB_ARCH_IMB_ARCH_SSE => Some(Arch::Sse),
        ffi::IMB_ARCH_IMB_ARCH_AVX => Some(Arch::Avx),
        ffi::IMB_ARCH_IMB_ARCH_AVX2 => Some(Arch::Avx2),
        ffi::IMB_ARCH_IMB_ARCH_AVX512 => Some(Arch::Avx512),
        _ => None,
    }
}

fn strerror(errno: i32) -> String {
    // SAFETY: imb_get_strerror returns a pointer to a static NUL-terminated string
    // (or NULL) for any errno value.
    let p = unsafe { ffi::imb_get_strerror(errno) };
    if p.is_null() {
        return format!("error {errno}");
    }
    // SAFETY: non-NULL pointers from imb_get_strerror point at static C strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// An owned, initialised multi-buffer manager. Not `Send`/`Sync` (raw pointer):
/// the library forbids sharing one between threads.
struct Manager {
    mgr: NonNull<IMB_MGR>,
    arch: Arch,
    jobs: JobFns,
}

type JobFn = unsafe extern "C" fn(*mut IMB_MGR) -> *mut IMB_JOB;

/// The job-API entry points of one manager, checked present at init.
#[derive(Clone, Copy)]
struct JobFns {
    get_next: JobFn,
    submit: JobFn,
    get_completed: JobFn,
    flush: JobFn,
}

impl Manager {
    fn new(want: Option<Arch>) -> Result<Self, Error> {
        // SAFETY: alloc_mb_mgr(0) allocates an IMB_MGR with CPU feature detection;
        // it returns NULL on failure, which we check.
        let raw = unsafe { ffi::alloc_mb_mgr(0) };
        let mgr =
            NonNull::new(raw).ok_or_else(|| Error::Init("alloc_mb_mgr returned NULL".into()))?;
        let mut chosen: ffi::IMB_ARCH = ffi::IMB_ARCH_IMB_ARCH_NONE;
        // SAFETY: `mgr` is a freshly allocated manager; the init functions only
        // write into it (and `chosen`, a valid out-pointer). Forced arches were
        // checked against the CPU in `forced_arch`.
        unsafe {
            match want {
                None => ffi::init_mb_mgr_auto(mgr.as_ptr(), &mut chosen),
                Some(Arch::Sse) => ffi::init_mb_mgr_sse(mgr.as_ptr()),
                Some(Arch::Avx) => ffi::init_mb_mgr_avx(mgr.as_ptr()),
                Some(Arch::Avx2) => ffi::init_mb_mgr_avx2(mgr.as_ptr()),
                Some(Arch::Avx512) => ffi::init_mb_mgr_avx512(mgr.as_ptr()),
                Some(Arch::NoAesni) => ffi::init_mb_mgr_auto(mgr.as_ptr(), &mut chosen),
            }
        }
        // Owns `mgr` from here on, so every early return frees it.
        let owner = Owned(mgr);
        // SAFETY: `mgr` is valid and initialised (or marked with an errno).
        let errno = unsafe { ffi::imb_get_errno(mgr.as_ptr()) };
        if errno != 0 {
            return Err(Error::Init(strerror(errno)));
        }
        let arch = match want {
            Some(a) => a,
            None => arch_from_ffi(chosen)
                .ok_or_else(|| Error::Init(format!("unknown arch {chosen}")))?,
        };
        // SAFETY: `mgr` is initialised; reading its function-pointer fields is a load.
        let t = unsafe { mgr.as_ref() };
        let missing = || Error::Init("manager lacks job API function pointers".into());
        let jobs = JobFns {
            get_next: t.get_next_job.ok_or_else(missing)?,
            submit: t.submit_job.ok_or_else(missing)?,
            get_completed: t.get_completed_job.ok_or_else(missing)?,
            flush: t.flush_job.ok_or_else(missing)?,
        };
        core::mem::forget(owner);
        Ok(Manager { mgr, arch, jobs })
    }

    fn as_ptr(&self) -> *mut IMB_MGR {
        self.mgr.as_ptr()
    }
}

/// Frees a manager that failed half-way through `Manager::new`.
struct Owned(NonNull<IMB_MGR>);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the pointer came from alloc_mb_mgr and is not used afterwards.
        unsafe { ffi::free_mb_mgr(self.0.as_ptr()) }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // SAFETY: `mgr` came from alloc_mb_mgr and is freed exactly once; every burst
        // flushes its jobs before returning, so no job refers to caller memory.
        unsafe { ffi::free_mb_mgr(self.mgr.as_ptr()) }
    }
}

type GcmPre = unsafe extern "C" fn(*const c_void, *mut gcm_key_data);
type GcmEncDec = unsafe extern "C" fn(
    *const gcm_key_data,
    *mut gcm_context_data,
    *mut u8,
    *const u8,
    u64,
    *const u8,
    *const u8,
    u64,
    *mut u8,
    u64,
);

/// The process-wide arch and the stateless GCM entry points for it, copied out of
/// one manager's function table. Plain code pointers: valid for the life of the
/// process and callable from any thread.
#[derive(Clone, Copy)]
struct FnTable {
    arch: Arch,
    gcm128_pre: GcmPre,
    gcm256_pre: GcmPre,
    gcm128_enc: GcmEncDec,
    gcm128_dec: GcmEncDec,
    gcm256_enc: GcmEncDec,
    gcm256_dec: GcmEncDec,
}

fn table() -> Result<&'static FnTable, Error> {
    static TABLE: OnceLock<Result<FnTable, Error>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let m = Manager::new(forced_arch()?)?;
            // SAFETY: `m` is a valid initialised manager; reading its function
            // pointer fields is a plain load.
            let t = unsafe { m.mgr.as_ref() };
            let missing = || Error::Init("manager has no GCM function pointers".into());
            Ok(FnTable {
                arch: m.arch,
                gcm128_pre: t.gcm128_pre.ok_or_else(missing)?,
                gcm256_pre: t.gcm256_pre.ok_or_else(missing)?,
                gcm128_enc: t.gcm128_enc.ok_or_else(missing)?,
                gcm128_dec: t.gcm128_dec.ok_or_else(missing)?,
                gcm256_enc: t.gcm256_enc.ok_or_else(missing)?,
                gcm256_dec: t.gcm256_dec.ok_or_else(missing)?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The SIMD path in use in this process (the same for every thread).
pub fn arch() -> Result<Arch, Error> {
    table().map(|t| t.arch)
}

thread_local! {
    /// This thread's manager for the job API (ChaCha20-Poly1305).
    static MANAGER: RefCell<Option<Manager>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's manager, creating it on first use.
fn with_manager<R>(f: impl FnOnce(&Manager) -> R) -> Result<R, Error> {
    let arch = table()?.arch;
    MANAGER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Manager::new(Some(arch).filter(|a| *a != Arch::NoAesni))?);
        }
        match slot.as_ref() {
            Some(m) => Ok(f(m)),
            None => Err(Error::Init("no manager".into())),
        }
    })
}

/// Create this thread's manager now (call at worker start so the first burst does
/// not allocate).
pub fn warm_up() -> Result<(), Error> {
    with_manager(|_| ())
}

/// AES-GCM key with the library's precomputed round keys and GHASH powers (for
/// the process arch), plus the ESP salt. Wiped on drop; Debug shows no key.
pub struct GcmKey {
    data: Box<gcm_key_data>,
    bits: u16,
    salt: Zeroizing<[u8; SALT_LEN]>,
    enc: GcmEncDec,
    dec: GcmEncDec,
}

impl core::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GcmKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl GcmKey {
    /// Expand a 16- or 32-byte AES key.
    pub fn new(key: &[u8], salt: [u8; SALT_LEN]) -> Result<Self, Error> {
        let t = table()?;
        let (pre, enc, dec) = match key.len() {
            16 => (t.gcm128_pre, t.gcm128_enc, t.gcm128_dec),
            32 => (t.gcm256_pre, t.gcm256_enc, t.gcm256_dec),
            n => return Err(Error::KeyLength(n)),
        };
        // SAFETY: gcm_key_data is plain bytes (arrays of u8 in a union), for which the
        // all-zero pattern is valid; Box honours its 64-byte alignment.
        let mut data: Box<gcm_key_data> = Box::new(unsafe { core::mem::zeroed() });
        // SAFETY: `key` holds the 16/32 bytes the matching `pre` reads; `data` is a
        // valid, aligned, writable gcm_key_data.
        unsafe { pre(key.as_ptr().cast(), &mut *data) };
        Ok(GcmKey {
            data,
            bits: key.len() as u16 * 8,
            salt: Zeroizing::new(salt),
            enc,
            dec,
        })
    }

    /// One-shot GCM over `data` in place; the tag goes to `tag`.
    fn run(
        &self,
        f: GcmEncDec,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) {
        let n = nonce(&self.salt, iv);
        // SAFETY: gcm_context_data is plain integers/bytes; all-zero is valid and it
        // is fully initialised by the call.
        let mut ctx: gcm_context_data = unsafe { core::mem::zeroed() };
        let p = data.as_mut_ptr();
        // SAFETY: the key data was expanded for this arch's function; in-place
        // operation (out == in) is supported by the library; every pointer is valid
        // for the length passed with it; the nonce is the 12 bytes the one-shot API
        // expects; the tag buffer holds TAG_LEN bytes.
        unsafe {
            f(
                &*self.data,
                &mut ctx,
                p,
                p,
                data.len() as u64,
                n.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                tag.as_mut_ptr(),
                TAG_LEN as u64,
            )
        };
    }

    /// Seal every op in place (RFC 4106).
    pub fn seal_burst<B: AeadBuffer>(&self, ops: &mut [B]) {
        for op in ops.iter_mut() {
            let AeadParts { iv, aad, data, tag } = op.parts();
            self.run(self.enc, iv, aad, data, tag);
        }
    }

    /// Open every op in place; `verdict(i, authentic)` for each.
    pub fn open_burst<B: AeadBuffer>(&self, ops: &mut [B], mut verdict: impl FnMut(usize, bool)) {
        for (i, op) in ops.iter_mut().enumerate() {
            let AeadParts { iv, aad, data, tag } = op.parts();
            let mut computed = [0u8; TAG_LEN];
            self.run(self.dec, iv, aad, data, &mut computed);
            verdict(i, tags_equal(&computed, tag));
        }
    }
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        // SAFETY: gcm_key_data is a flat struct of bytes with no Drop and no pointers;
        // zeroing it leaves a valid value behind.
        unsafe { zeroize::zeroize_flat_type(&mut *self.data as *mut gcm_key_data) };
    }
}

/// Ops in flight per flush; bounds the on-stack scratch (nonces, expected tags).
const CHUNK: usize = 32;

/// ChaCha20-Poly1305 key (RFC 7634) driven through the job API on this thread's
/// manager. Wiped on drop; Debug shows no key.
pub struct ChaChaPolyKey {
    key: Zeroizing<[u8; 32]>,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl core::fmt::Debug for ChaChaPolyKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChaChaPolyKey").finish_non_exhaustive()
    }
}

/// What the job API should do with a burst.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

impl ChaChaPolyKey {
    /// Take a 32-byte key; checks the library is usable here.
    pub fn new(key: &[u8], salt: [u8; SALT_LEN]) -> Result<Self, Error> {
        table()?;
        let key: [u8; 32] = key.try_into().map_err(|_| Error::KeyLength(key.len()))?;
        Ok(ChaChaPolyKey {
            key: Zeroizing::new(key),
            salt: Zeroizing::new(salt),
        })
    }

    /// Seal every op in place. If this thread's manager cannot be created, every
    /// op fails closed (data and tag zeroed).
    pub fn seal_burst<B: AeadBuffer>(&self, ops: &mut [B]) {
        if with_manager(|m| self.run_jobs(m, Direction::Seal, ops, |_, _| ())).is_err() {
            ops.iter_mut().for_each(fail_closed);
        }
    }

    /// Open every op in place; `verdict(i, authentic)` for each.
    pub fn open_burst<B: AeadBuffer>(&self, ops: &mut [B], mut verdict: impl FnMut(usize, bool)) {
        if with_manager(|m| self.run_jobs(m, Direction::Open, ops, &mut verdict)).is_err() {
            (0..ops.len()).for_each(|i| verdict(i, false));
        }
    }

    /// Submit `ops` as jobs in chunks of [`CHUNK`], flushing after each chunk so no
    /// job outlives the scratch it points into.
    fn run_jobs<B: AeadBuffer>(
        &self,
        m: &Manager,
        dir: Direction,
        ops: &mut [B],
        mut verdict: impl FnMut(usize, bool),
    ) {
        let (mgr, j) = (m.as_ptr(), m.jobs);
        for (c, chunk) in ops.chunks_mut(CHUNK).enumerate() {
            let mut nonces = [[0u8; SALT_LEN + IV_LEN]; CHUNK];
            // Seal: tags land in the ops. Open: computed tags land here and the
            // received ones are copied beside them.
            let mut computed = [[0u8; TAG_LEN]; CHUNK];
            let mut expected = [[0u8; TAG_LEN]; CHUNK];
            let mut ok = [false; CHUNK];
            for (i, op) in chunk.iter_mut().enumerate() {
                let AeadParts { iv, aad, data, tag } = op.parts();
                nonces[i] = nonce(&self.salt, iv);
                let tag_out: *mut u8 = match dir {
                    Direction::Seal => tag.as_mut_ptr(),
                    Direction::Open => {
                        expected[i] = *tag;
                        computed[i].as_mut_ptr()
                    }
                };
                // SAFETY: `mgr` is this thread's initialised manager. get_next_job
                // never returns NULL (it hands out a free slot of the job ring).
                // Every pointer stored in the job (key, nonce, aad, data, tag) stays
                // valid and unaliased until the flush below completes this chunk:
                // the ops are borrowed for the whole call and the scratch arrays
                // live on this stack frame.
                unsafe {
                    let job = (j.get_next)(mgr);
                    self.fill_job(&mut *job, dir, &nonces[i], aad, data, tag_out, i);
                    let mut done = (j.submit)(mgr);
                    while !done.is_null() {
                        let (idx, good) = job_result(&*done);
                        ok[idx] = good;
                        done = (j.get_completed)(mgr);
                    }
                }
            }
            // SAFETY: as above; flush_job returns queued jobs until none remain.
            unsafe {
                loop {
                    let done = (j.flush)(mgr);
                    if done.is_null() {
                        break;
                    }
                    let (idx, good) = job_result(&*done);
                    ok[idx] = good;
                }
            }
            for (i, op) in chunk.iter_mut().enumerate() {
                match dir {
                    Direction::Seal if !ok[i] => fail_closed(op),
                    Direction::Seal => {}
                    Direction::Open => verdict(
                        c * CHUNK + i,
                        ok[i] && tags_equal(&computed[i], &expected[i]),
                    ),
                }
            }
        }
    }

    /// Describe one ChaCha20-Poly1305 AEAD job (RFC 7634: 12-byte nonce, 16-byte tag).
    #[allow(clippy::too_many_arguments)]
    fn fill_job(
        &self,
        job: &mut IMB_JOB,
        dir: Direction,
        nonce: &[u8; SALT_LEN + IV_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag_out: *mut u8,
        index: usize,
    ) {
        let len = data.len() as u64;
        job.enc_keys = self.key.as_ptr().cast();
        job.dec_keys = self.key.as_ptr().cast();
        job.key_len_in_bytes = ffi::IMB_KEY_SIZE_BYTES_IMB_KEY_256_BYTES as u64;
        job.__bindgen_anon_1.src = data.as_ptr();
        job.__bindgen_anon_2.dst = data.as_mut_ptr();
        job.__bindgen_anon_3.cipher_start_src_offset_in_bytes = 0;
        job.__bindgen_anon_4.msg_len_to_cipher_in_bytes = len;
        job.hash_start_src_offset_in_bytes = 0;
        job.__bindgen_anon_5.msg_len_to_hash_in_bytes = len;
        job.iv = nonce.as_ptr();
        job.iv_len_in_bytes = nonce.len() as u64;
        job.auth_tag_output = tag_out;
        job.auth_tag_output_len_in_bytes = TAG_LEN as u64;
        job.u.CHACHA20_POLY1305 = ffi::IMB_JOB__bindgen_ty_6__CHACHA20_POLY1305_specific_fields {
            aad: aad.as_ptr().cast(),
            aad_len_in_bytes: aad.len() as u64,
            ctx: ptr::null_mut(),
        };
        job.cipher_mode = ffi::IMB_CIPHER_MODE_IMB_CIPHER_CHACHA20_POLY1305;
        job.hash_alg = ffi::IMB_HASH_ALG_IMB_AUTH_CHACHA20_POLY1305;
        // Encrypt-then-MAC on seal, MAC-then-decrypt on open (RFC 8439 §2.8).
        (job.cipher_direction, job.chain_order) = match dir {
            Direction::Seal => (
                ffi::IMB_CIPHER_DIRECTION_IMB_DIR_ENCRYPT,
                ffi::IMB_CHAIN_ORDER_IMB_ORDER_CIPHER_HASH,
            ),
            Direction::Open => (
                ffi::IMB_CIPHER_DIRECTION_IMB_DIR_DECRYPT,
                ffi::IMB_CHAIN_ORDER_IMB_ORDER_HASH_CIPHER,
            ),
        };
        job.user_data = index as *mut c_void;
    }
}

/// A seal that did not complete: zero data and tag so no plaintext leaves with a
/// bogus tag.
fn fail_closed<B: AeadBuffer>(op: &mut B) {
    let p = op.parts();
    p.data.fill(0);
    p.tag.fill(0);
}

/// (index in the chunk, completed without error) of a returned job.
fn job_result(job: &IMB_JOB) -> (usize, bool) {
    let idx = job.user_data as usize % CHUNK;
    (idx, job.status == ffi::IMB_STATUS_IMB_STATUS_COMPLETED)
}
