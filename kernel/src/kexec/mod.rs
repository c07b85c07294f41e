//! kexec in the running kernel: the `kexec` shell command and the kexec-chain self-test.
//!
//! **Load** (`kexec -l`) does everything that can fail or allocate: checks the Image, places
//! the segments (image, initrd, DTB, chain hand-over block), builds the next DTB, the entry
//! list and its source pages, and from control pages (which overlap no destination) the
//! relocation page, its argument block, a zero table, the EL2 stub vectors (when entered at
//! EL2), the linear-map copy and the one-page identity map.
//!
//! **Execute** (`kexec -e`) allocates nothing: it takes the other CPUs out of the kernel, masks
//! interrupts, quiesces the GIC and the timers, points EL2 at the copied stub, and jumps to the
//! relocation page. The chain self-test that drives all this is in `selftest.rs`.

pub mod capture;
pub mod crash;
pub mod selftest;
pub mod verify;

use crate::memory::{self, FramePages, GunzipError, FRAMES};
use crate::{arch, files, println, SYSTEM};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use kernel::formats::chain::{self, Header};
use kernel::formats::dtb::{self, DtbError};
use kernel::formats::gzip;
use kernel::formats::sha256;
use kexec::image::{self, ImageError, ImageHeader};
use kexec::kimage::{Kimage, LoadError, PhysPages, Segment};
use kexec::place::{self, PlaceError, Placement};
use kexec::reloc;
use mm::addr::PhysAddr;
use mm::layout::LINEAR_BASE;
use mm::memmap::Region;
use mm::paging::{MapError, TableAlloc, ENTRIES};
use mm::PAGE_SIZE;
use spin::Mutex;
use zerocopy::IntoBytes;

pub(crate) const MIB: u64 = 1 << 20;
/// A DTB may be at most 2 MiB and must not cross a 2 MiB boundary: place it 2 MiB aligned.
const DTB_MAX: u64 = dtb::MAX_SIZE as u64;

/// Why kexec refused.
#[derive(Debug)]
pub enum KexecError {
    /// The image file is not a usable Image.
    Image(String, ImageError),
    /// No such file in the initramfs.
    NoFile(String),
    /// A file on a disk that cannot be read (the message names it).
    File(String),
    /// An option this command does not know.
    UnknownOption(String),
    /// `kexec -e` with nothing loaded.
    NotLoaded,
    /// The DTB could not be used or edited.
    Dtb(String, DtbError),
    /// The edited DTB is over 2 MiB.
    DtbTooLarge(u64),
    /// A boot attempt with the watchdog, and no page for its record.
    NoBootRecord,
    /// A file whose SHA-256 is not the one asked for (`--initrd-sha256=`, `--dtb-sha256=`).
    Digest {
        /// `initrd` or `DTB`.
        what: &'static str,
        /// The file.
        file: String,
        /// What it hashes to.
        got: [u8; 32],
        /// What was asked for.
        want: [u8; 32],
    },
    /// A digest asked for a file that is not given (`--dtb-sha256` without `--dtb`).
    DigestOfNothing(&'static str),
    /// A segment has no place in usable memory.
    Place(PlaceError),
    /// The entry list could not be built.
    List(LoadError),
    /// Transitional tables or control pages could not be allocated.
    Tables(MapError),
    /// No memory for a control page.
    NoControlPage,
    /// No free page for the spin-table CPUs' pen.
    NoPenPage,
    /// No memory for a buffer.
    NoMemory(u64),
    /// The segments need more memory than is free.
    TooBig {
        /// Bytes of all segments.
        need: u64,
        /// Bytes free.
        free: u64,
    },
    /// Another CPU could not be stopped.
    Cpus(String),
    /// An Image.gz whose trailer announces more than free memory (truncated or corrupt).
    GzipSize {
        /// The file.
        file: String,
        /// Size the gzip trailer announces.
        announced: u64,
        /// Bytes free.
        free: u64,
    },
    /// A gzip-compressed Image that cannot be inflated.
    Gzip(String, kernel::formats::gzip::GzipError),
    /// `kexec.from_irq` on a machine without a GIC or a timer interrupt in the DTB.
    NoTick,
    /// The image does not verify under `kexec.verify=enforce` (or `kexec -l --verify`).
    Verify(String, kernel::trust::VerifyError),
}

impl fmt::Display for KexecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(file, e) => write!(f, "{file}: {e}"),
            Self::NoFile(p) => write!(f, "{p}: no such file in the initramfs"),
            Self::File(e) => write!(f, "{e}"),
            Self::UnknownOption(o) => write!(
                f,
                "unknown option '{o}' (kexec -l IMAGE|--self [--initrd=FILE [--initrd-sha256=HEX]] [--append=\"CMDLINE\"] [--dtb=FILE [--dtb-sha256=HEX]] [--verify[=off|warn|enforce]] [--mmu-off] [--base=ADDR], -e, -u)"
            ),
            Self::NotLoaded => write!(f, "nothing loaded: use kexec -l first"),
            Self::Dtb(what, e) => write!(f, "{what}: {e}"),
            Self::DtbTooLarge(n) => {
                write!(f, "the next DTB is {n} bytes; the boot protocol allows 2 MiB")
            }
            Self::Digest {
                what,
                file,
                got,
                want,
            } => write!(
                f,
                "{what} {file}: its SHA-256 is {}, where {} was asked for: refused",
                sha256::hex(got),
                sha256::hex(want)
            ),
            Self::DigestOfNothing(opt) => write!(f, "{opt}: no such file is given to check"),
            Self::Verify(file, e) => write!(f, "{file} is refused (kexec.verify=enforce): {e}"),
            Self::NoBootRecord => write!(
                f,
                "the watchdog fail-safe needs the last page of the first RAM bank, which this \
                 boot could not keep (something else is there)"
            ),
            Self::Place(e) => write!(f, "{e}"),
            Self::List(e) => write!(f, "entry list: {e}"),
            Self::Tables(e) => write!(f, "transitional tables: {e}"),
            Self::NoControlPage => write!(f, "out of memory for control pages"),
            Self::NoPenPage => write!(f, "out of memory for the spin-table CPUs' pen page"),
            Self::NoMemory(n) => write!(f, "out of memory for a {n}-byte buffer"),
            Self::Gzip(file, e) => write!(f, "{file}: Image.gz: {e}"),
            Self::Cpus(e) => write!(f, "stopping the other CPUs: {e}"),
            Self::NoTick => write!(
                f,
                "kexec.from_irq needs a tick: the DTB names no GIC this kernel drives, or no arm,armv8-timer interrupt"
            ),
            Self::GzipSize { file, announced, free } => write!(
                f,
                "{file}: Image.gz: its trailer announces {announced} bytes, more than the {free} bytes free (truncated or corrupt?)"
            ),
            Self::TooBig { need, free } => write!(
                f,
                "the segments need {} MiB of source pages but only {} MiB are free: use a smaller initrd or image",
                need >> 20,
                free >> 20
            ),
        }
    }
}

/// Where the next image comes from.
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// The running kernel's own pristine Image.
    Itself,
    /// A file (in the initramfs, or `DISKpN:/path`).
    File(String),
}

/// What the next initrd is.
#[derive(Clone, Debug)]
pub enum InitrdSource {
    /// None.
    None,
    /// The initrd this kernel was booted with (the default for `--self`).
    Current,
    /// A file (in the initramfs, or `DISKpN:/path`).
    File(String),
    /// Several files, one after the other (each padded to 4 bytes): Linux unpacks every
    /// archive of an initramfs made of several (a boot entry's `initrd a,b`).
    Files(Vec<String>),
}

/// A `kexec -l`.
#[derive(Clone, Debug)]
pub struct LoadRequest<'a> {
    /// The image.
    pub image: ImageSource,
    /// The initrd.
    pub initrd: InitrdSource,
    /// New `/chosen/bootargs`, or keep the DTB's.
    pub append: Option<String>,
    /// A DTB file to start from instead of the running one.
    pub dtb: Option<String>,
    /// Relocate with the MMU off.
    pub mmu_off: bool,
    /// Place the image at this 2 MiB-aligned base instead of the lowest that fits.
    pub base: Option<u64>,
    /// A chain hand-over block (header page + payload) to pass on.
    pub handover: Option<&'a [u8]>,
    /// Copy every page at `kexec -e` (as Linux does) instead of writing segments whose
    /// destination is free straight into it.
    pub copy_all: bool,
    /// `kexec -p`: a crash kernel, placed in this region (reserved at boot by
    /// `crashkernel=`), entered at a panic; its last page is the ELF core header.
    pub crash: Option<Region>,
    /// `boot`'s watchdog fail-safe: the attempt's number, told to the next kernel in
    /// `/chosen/hobby,boot-attempt`, with the boot record's page kept by a `/memreserve/`.
    pub boot_attempt: Option<u64>,
    /// `--initrd-sha256=`: the initrd must have this SHA-256 (what is not signed, pinned).
    pub initrd_sha256: Option<[u8; 32]>,
    /// `--dtb-sha256=`: the `--dtb` file must have this SHA-256.
    pub dtb_sha256: Option<[u8; 32]>,
    /// `--verify`: this load's signature policy, at least `kexec.verify=`'s.
    pub verify: kernel::trust::Policy,
}

impl LoadRequest<'_> {
    /// Loads `image` with nothing else changed.
    pub fn new(image: ImageSource) -> Self {
        let initrd = match image {
            ImageSource::Itself => InitrdSource::Current,
            ImageSource::File(_) => InitrdSource::None,
        };
        LoadRequest {
            image,
            initrd,
            append: None,
            dtb: None,
            mmu_off: false,
            base: None,
            handover: None,
            copy_all: false,
            crash: None,
            boot_attempt: None,
            initrd_sha256: None,
            dtb_sha256: None,
            verify: kernel::trust::Policy::Off,
        }
    }
}

struct SegInfo {
    what: String,
    dest: Region,
    bytes: u64,
    /// Bytes of `dest` written in place at load time (the rest is copied at `kexec -e`).
    in_place: u64,
}

pub struct Loaded {
    kimage: Kimage,
    segs: Vec<SegInfo>,
    args: reloc::Args,
    args_pa: u64,
    reloc_pa: u64,
    idmap_root: u64,
    ttpages: usize,
    /// The source page holding the chain header, to stamp `exec_ticks` into.
    handover_src: Option<u64>,
    /// The spin-table pen.
    pen: Option<PenPage>,
}

impl Drop for Loaded {
    /// `kexec -u`, or a load replaced: its pages (and a pen page it took) go back.
    fn drop(&mut self) {
        self.kimage.free(&mut FramePages);
    }
}

/// The page of the spin-table pen a load hands its CPUs to.
pub enum PenPage {
    /// The page the DTB already reserves (a previous kernel's pen), reused.
    Reused(u64),
    /// A page this load took, reserved in the next DTB with a `/memreserve/`.
    Fresh(memory::FrameBuf),
}

impl PenPage {
    /// Its physical address.
    pub fn pa(&self) -> PhysAddr {
        match self {
            Self::Reused(pa) => PhysAddr(*pa),
            Self::Fresh(buf) => buf.pa(),
        }
    }
}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);
/// The crash kernel (`kexec -p`), for a panic.
static CRASH: Mutex<Option<Loaded>> = Mutex::new(None);

/// The slot a load goes to.
fn slot(req: &LoadRequest<'_>) -> &'static Mutex<Option<Loaded>> {
    if req.crash.is_some() {
        &CRASH
    } else {
        &LOADED
    }
}

/// The running kernel's Image, byte for byte as `scripts/build.sh` wrote it: text and
/// read-only data as mapped (never written), `.data` as loaded (saved by the boot code), and
/// the PE/COFF header's `ImageBase` as the file has it (0: a PE loader such as EDK2 writes
/// the load address there).
pub fn pristine_image() -> Vec<u8> {
    use boot::symbols::{__data_pristine, _edata, _sdata, _text, pe_image_base};
    let at = |s: &u8| s as *const u8 as usize;
    // SAFETY: linker symbols: [_text, _sdata) is the mapped, read-only text and rodata;
    // __data_pristine holds _edata - _sdata bytes saved before any Rust ran.
    unsafe {
        let (text, sdata, edata) = (at(&_text), at(&_sdata), at(&_edata));
        let mut v = Vec::with_capacity(edata - text);
        v.extend_from_slice(core::slice::from_raw_parts(text as *const u8, sdata - text));
        v.extend_from_slice(core::slice::from_raw_parts(
            &raw const __data_pristine,
            edata - sdata,
        ));
        let base = (&raw const pe_image_base) as usize - text;
        v[base..base + 8].fill(0);
        v
    }
}

/// Files read and joined into one buffer, each padded with zeros to a multiple of 4 bytes
/// (as the initramfs format allows between archives).
fn joined(paths: &[String]) -> Result<files::FileData, KexecError> {
    let parts: Vec<files::FileData> = paths.iter().map(|p| file(p)).collect::<Result<_, _>>()?;
    let total: u64 = parts.iter().map(|d| mm::align_up(d.len() as u64, 4)).sum();
    let mut buf = memory::FrameBuf::alloc(total).ok_or(KexecError::NoMemory(total))?;
    let mut at = 0;
    for d in &parts {
        buf[at..at + d.len()].copy_from_slice(d);
        let end = mm::align_up((at + d.len()) as u64, 4) as usize;
        buf[at + d.len()..end].fill(0);
        at = end;
    }
    Ok(files::FileData::Frames(buf))
}

/// A file `kexec` reads: in the initramfs, or on a disk (`DISKpN:/path`).
fn file(path: &str) -> Result<files::FileData, KexecError> {
    match kernel::storage::FileName::parse(path) {
        Ok(kernel::storage::FileName::Initramfs(p)) => files::find(&p)
            .map(files::FileData::Initramfs)
            .ok_or_else(|| KexecError::NoFile(path.to_string())),
        _ => files::read(path).map_err(KexecError::File),
    }
}

/// Refuses `data` (the `what` file `name`) unless its SHA-256 is `want`.
fn check_digest(
    what: &'static str,
    name: &str,
    data: &[u8],
    want: [u8; 32],
) -> Result<(), KexecError> {
    let got = arch::sha2::sha256(data);
    if got != want {
        return Err(KexecError::Digest {
            what,
            file: name.to_string(),
            got,
            want,
        });
    }
    Ok(())
}

/// Control pages as page tables.
struct ControlTables<'a> {
    kimage: &'a mut Kimage,
}

// SAFETY: control pages are frames this load owns (zeroed by `alloc_control`), reached
// through the linear map, which maps all RAM.
unsafe impl TableAlloc for ControlTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.kimage.alloc_control(&mut FramePages)
    }
    fn table_ptr(&self, pa: u64) -> core::ptr::NonNull<[u64; ENTRIES]> {
        core::ptr::NonNull::new(PhysAddr(pa).to_virt().as_mut_ptr())
            .expect("the linear map is not at 0")
    }
}

/// A fresh, zeroed control page of `kimage`, written through the linear map while `kimage`
/// is borrowed (it owns the page, and frees it with itself).
fn control_page(kimage: &mut Kimage) -> Result<(u64, &mut [u8]), KexecError> {
    let pa = kimage
        .alloc_control(&mut FramePages)
        .ok_or(KexecError::NoControlPage)?;
    // SAFETY: a fresh control page, owned by `kimage`, which stays borrowed while the slice
    // lives.
    Ok((pa, unsafe { memory::page_mut(PhysAddr(pa)) }))
}

/// `kexec -l`: loads the next kernel; replaces whatever was loaded.
pub fn load(req: &LoadRequest) -> Result<(), KexecError> {
    if let Some(region) = req.crash {
        // The crash region goes back to the allocator for the load (so that the segments
        // are claimed and written in place), and whatever the load leaves free is taken
        // back after it, success or not.
        unload_crash();
        crate::kexec::crash::release_region();
        let result = load_checked(req, alloc::vec![crate::kexec::crash::usable_part(region)]);
        crate::kexec::crash::retake_region();
        return result;
    }
    unload();
    let map = memory::memory_map().expect("memory::init ran");
    load_checked(req, place::usable(map))
}

fn load_checked(req: &LoadRequest, usable: Vec<Region>) -> Result<(), KexecError> {
    let sys = SYSTEM.get().expect("booted");

    let pristine;
    let gunzipped;
    let read;
    let (name, image_bytes): (String, &[u8]) = match &req.image {
        ImageSource::Itself => {
            pristine = pristine_image();
            ("itself".into(), &pristine)
        }
        ImageSource::File(p) => {
            read = file(p)?;
            let f: &[u8] = &read;
            if gzip::is_gzip(f) {
                // Image.gz: inflated into frames, given back once the load has copied them.
                gunzipped = memory::FrameBuf::gunzip(f).map_err(|e| match e {
                    GunzipError::Gzip(e) => KexecError::Gzip(p.clone(), e),
                    GunzipError::TooLarge { announced, free } => KexecError::GzipSize {
                        file: p.clone(),
                        announced,
                        free,
                    },
                    GunzipError::NoMemory(n) => KexecError::NoMemory(n),
                })?;
                (p.clone(), &gunzipped)
            } else {
                (p.clone(), f)
            }
        }
    };
    let signed = verify::check(
        &name,
        image_bytes,
        req.verify,
        matches!(req.image, ImageSource::Itself),
    )?;
    load_image(req, sys, &usable, &name, &image_bytes[..signed])
}

/// A load, step by step: check the Image, [`place_segments`], [`next_dtb`] (with the pen for
/// spin-table CPUs), place the DTB, [`fill_segments`] (the entry list and its source pages),
/// [`build_control`] (relocation page, arguments, transitional tables), then [`finish_load`].
/// Every step can fail with a named error; what the earlier steps allocated is freed again.
fn load_image(
    req: &LoadRequest,
    sys: &crate::System,
    usable: &[Region],
    name: &str,
    image_bytes: &[u8],
) -> Result<(), KexecError> {
    let hdr: ImageHeader =
        image::parse(image_bytes).map_err(|e| KexecError::Image(name.to_string(), e))?;
    let initrd_file;
    let initrd: Option<(String, &[u8])> = match &req.initrd {
        InitrdSource::None => None,
        InitrdSource::File(p) => {
            initrd_file = file(p)?;
            Some((p.clone(), &initrd_file))
        }
        InitrdSource::Files(ps) => {
            initrd_file = joined(ps)?;
            Some((ps.join(" + "), &initrd_file))
        }
        InitrdSource::Current => sys.platform.initrd.map(|r| {
            // SAFETY: the boot initrd is reserved RAM that nothing writes.
            ("the current one".to_string(), unsafe {
                memory::phys_slice(r)
            })
        }),
    };
    match (req.initrd_sha256, &initrd) {
        (Some(want), Some((n, data))) => check_digest("initrd", n, data, want)?,
        (Some(_), None) => return Err(KexecError::DigestOfNothing("--initrd-sha256")),
        (None, _) => {}
    }
    let initrd_len = initrd.as_ref().map(|(_, data)| data.len());
    let mut placed = place_segments(req, usable, &hdr, initrd_len)?;
    let dtb = next_dtb(req, sys, &mut placed, initrd_len)?;
    let dtb_dest = placed
        .put("DTB", dtb.blob.len() as u64, DTB_MAX, usable)
        .map_err(KexecError::Place)?;

    // Segments, in the order the list copies them.
    let mut parts: Vec<(String, &[u8], Region)> =
        alloc::vec![(format!("image ({name})"), image_bytes, placed.image)];
    if let (Some((n, d)), Some(r)) = (&initrd, placed.initrd) {
        parts.push((format!("initrd ({n})"), d, r));
    }
    if let (Some(h), Some(r)) = (&req.handover, placed.handover) {
        parts.push(("chain hand-over".into(), h, r));
    }
    parts.push((format!("DTB (from {})", dtb.name), &dtb.blob, dtb_dest));
    let (mut kimage, segs) = fill_segments(&parts, !req.copy_all)?;

    let dests = Destinations {
        image: placed.image,
        dtb: dtb_dest,
        handover: placed.handover,
    };
    match build_control(&mut kimage, req, &dests, sys.entry_el) {
        Ok(control) => {
            finish_load(req, kimage, segs, &dests, control, dtb.pen);
            Ok(())
        }
        Err(e) => {
            kimage.free(&mut FramePages);
            Err(e)
        }
    }
}

/// Load step 1: where the segments go ([`Placement::plan`]), free memory first so that they
/// are written in place. The DTB is placed once it is written ([`next_dtb`]).
fn place_segments(
    req: &LoadRequest,
    usable: &[Region],
    hdr: &ImageHeader,
    initrd_len: Option<usize>,
) -> Result<Placement, KexecError> {
    let request = place::Request {
        image_size: hdr.image_size,
        text_offset: hdr.text_offset,
        base: req.base,
        initrd: initrd_len.map(|n| n as u64),
        handover: req.handover.map(|h| h.len() as u64),
    };
    Placement::plan(usable, &FRAMES.free_regions(), &request).map_err(KexecError::Place)
}

/// The next kernel's DTB, and the pen it names.
struct NextDtb {
    /// Where it came from (a file, or the running DTB).
    name: String,
    /// The edited blob.
    blob: Vec<u8>,
    /// The spin-table pen (a fresh page goes back if the load fails).
    pen: Option<PenPage>,
}

/// Load step 2: the running DTB (or `--dtb`) with `/chosen` edited as Linux's kexec does
/// (`bootargs`, the initrd and hand-over ranges as placed, fresh seeds or none) and, when
/// spin-table CPUs run, their `cpu-release-addr`s pointed at a pen's mailboxes and a fresh pen
/// page reserved (placed clear of `placed`, and freed again if this step fails).
fn next_dtb(
    req: &LoadRequest,
    sys: &crate::System,
    placed: &mut Placement,
    initrd_len: Option<usize>,
) -> Result<NextDtb, KexecError> {
    let dtb_file;
    let (name, base_dtb): (String, &[u8]) = match &req.dtb {
        Some(p) => {
            dtb_file = file(p)?;
            (p.clone(), &dtb_file)
        }
        None => ("the running DTB".into(), sys.fdt),
    };
    match (req.dtb_sha256, &req.dtb) {
        (Some(want), Some(_)) => check_digest("DTB", &name, base_dtb, want)?,
        (Some(_), None) => return Err(KexecError::DigestOfNothing("--dtb-sha256")),
        (None, _) => {}
    }
    if base_dtb.len() as u64 > DTB_MAX {
        return Err(KexecError::DtbTooLarge(base_dtb.len() as u64));
    }
    let chosen = next_chosen(req, sys, placed, initrd_len);
    let mut edits: Vec<dtb::Edit<'_>> = chosen.edits();

    // CPUs from a spin table wait for the next kernel in a pen: their cpu-release-addr
    // become its mailboxes, and a fresh pen page becomes a /memreserve/.
    let pen = if crate::smp::spin_cpus().map_err(KexecError::Cpus)? {
        let p = prepare_pen(sys, &placed.taken)?;
        placed.taken.push(Region::new(p.pa().get(), PAGE_SIZE));
        Some(p)
    } else {
        None
    };
    let mailboxes = pen.as_ref().map_or(Vec::new(), |p| mailboxes(p.pa()));
    for (slot, v) in &mailboxes {
        edits.push(dtb::Edit {
            node: &sys.platform.cpus[*slot].path,
            prop: "cpu-release-addr",
            value: Some(v),
        });
    }
    let mut reserve: Vec<(u64, u64)> = match &pen {
        Some(PenPage::Fresh(page)) => alloc::vec![(page.pa().get(), PAGE_SIZE)],
        _ => Vec::new(),
    };
    reserve.extend(live_lpi_tables(req.dtb.is_none()));
    if req.boot_attempt.is_some() {
        let page = memory::boot_record_page().ok_or(KexecError::NoBootRecord)?;
        reserve.push((page.get(), PAGE_SIZE));
    }
    let blob =
        dtb::edit(base_dtb, &edits, &reserve).map_err(|e| KexecError::Dtb(name.clone(), e))?;
    if blob.len() as u64 > DTB_MAX {
        return Err(KexecError::DtbTooLarge(blob.len() as u64));
    }
    Ok(NextDtb { name, blob, pen })
}

/// What the next kernel is told in `/chosen`: its initrd and hand-over block where they
/// were placed, fresh seeds, the boot attempt, the command line, a crash kernel's memory;
/// what was this kernel's alone removed.
fn next_chosen(
    req: &LoadRequest,
    sys: &crate::System,
    placed: &Placement,
    initrd_len: Option<usize>,
) -> dtb::Chosen {
    let range = |r: Option<Region>, len: Option<usize>| {
        r.zip(len).map(|(r, len)| (r.start, r.start + len as u64))
    };
    let seeds = match crate::random::next_kernel_seeds() {
        Ok(s) => Some(s),
        Err(e) => {
            println!("kexec: no kaslr-seed or rng-seed for the next kernel: {e}");
            None
        }
    };
    let chosen = dtb::Chosen::default()
        .initrd(range(placed.initrd, initrd_len))
        .range(
            "kexec,handover-start",
            "kexec,handover-end",
            range(placed.handover, req.handover.map(<[u8]>::len)),
        )
        // Fresh seeds from the entropy pool; none if it has not been seeded (never the old
        // ones again).
        .bytes("kaslr-seed", seeds.map(|s| s.0.to_vec()))
        .bytes("rng-seed", seeds.map(|s| s.1.to_vec()))
        // The firmware's entropy was this kernel's: never handed on.
        .bytes(kernel::platform::EFI_RNG_SEED, None)
        .bytes(
            BOOT_ATTEMPT,
            req.boot_attempt.map(|a| a.to_be_bytes().to_vec()),
        )
        // The ESP's files stay this kernel's: the next one does not keep them.
        .bytes("hobby,esp-files-start", None)
        .bytes("hobby,esp-files-end", None);
    // The trust set and the policy go on to the next generation.
    let chosen = verify::next_chosen()
        .into_iter()
        .fold(chosen, |c, (name, value)| c.bytes(name, value))
        .bootargs(req.append.as_ref().map(|a| a.as_bytes()));
    // A crash kernel's RAM, and its ELF core header (the region's last page), in the
    // root's cells; removed from any other next DTB.
    let (ac, sc) = fdt::Fdt::new(sys.fdt).map_or((2, 2), |f| {
        f.find_node("/")
            .map_or((2, 2), |r| mm::memmap::cell_counts(&r))
    });
    let crash_reg = |r: Region| reg_cells(r, ac, sc);
    // The whole region: Linux maps only its usable memory, and reads the header through it.
    let usable_reg = req.crash.map(crash_reg);
    let hdr_reg = req
        .crash
        .map(|r| crash_reg(crate::kexec::crash::header_page(r)));
    chosen
        .bytes("linux,usable-memory-range", usable_reg)
        .bytes("linux,elfcorehdr", hdr_reg)
}

/// The `/chosen` property that tells the next kernel which boot attempt it is.
pub const BOOT_ATTEMPT: &str = "hobby,boot-attempt";

/// Each spin-table CPU's slot and its mailbox in the pen at `pen` (big-endian, as
/// `cpu-release-addr` holds it).
fn mailboxes(pen: PhysAddr) -> Vec<(usize, [u8; 8])> {
    crate::smp::spin_slots()
        .iter()
        .map(|&(slot, _)| {
            let mailbox = pen.add((kexec::pen::MAILBOXES + 8 * slot) as u64);
            (slot, mailbox.get().to_be_bytes())
        })
        .collect()
}

/// LPI tables the GIC may still write (a previous kernel left EnableLPIs set and it could
/// not be cleared): they stay reserved in the next kernel too, unless the running DTB (when
/// it is the one passed on) says so already. `(start, size)` for `/memreserve/`s.
fn live_lpi_tables(running_dtb: bool) -> Vec<(u64, u64)> {
    let map = memory::memory_map().expect("memory::init ran");
    let in_dtb = |r: &Region| {
        running_dtb
            && map.reserved.iter().any(|m| {
                m.kind == mm::memmap::ReservedKind::MemReserve
                    && m.region.start <= r.start
                    && r.end <= m.region.end
            })
    };
    map.reserved
        .iter()
        .filter(|m| m.kind == mm::memmap::ReservedKind::GicLpiTables && !in_dtb(&m.region))
        .map(|lpi| (lpi.region.start, lpi.region.size()))
        .collect()
}

/// Load step 3: the entry list with a source page for every destination page, from
/// `(description, data, destination)` in copy order. Refuses plainly when the source pages
/// cannot fit in free memory.
fn fill_segments(
    parts: &[(String, &[u8], Region)],
    zero_copy: bool,
) -> Result<(Kimage, Vec<SegInfo>), KexecError> {
    let segments: Vec<Segment<'_>> = parts
        .iter()
        .map(|(_, data, r)| Segment {
            data,
            dest: r.start,
            memsz: r.size(),
        })
        .collect();
    let need: u64 = segments.iter().map(|s| s.range().size()).sum();
    let free = FRAMES.free_frames() * PAGE_SIZE;
    if need > free {
        return Err(KexecError::TooBig { need, free });
    }
    let kimage = Kimage::load(&mut FramePages, &segments, zero_copy).map_err(KexecError::List)?;
    let segs = parts
        .iter()
        .map(|(what, data, dest)| SegInfo {
            what: what.clone(),
            dest: *dest,
            bytes: data.len() as u64,
            in_place: kimage.in_place_bytes(dest),
        })
        .collect();
    Ok((kimage, segs))
}

/// The destinations the relocation page and the hand-over header need to know.
struct Destinations {
    image: Region,
    dtb: Region,
    handover: Option<Region>,
}

/// Load step 5: stamps the chain header's sender-side fields (now known), pushes the list and
/// sources to the PoC for an MMU-off copy, and keeps the result for `kexec -e`.
fn finish_load(
    req: &LoadRequest,
    kimage: Kimage,
    segs: Vec<SegInfo>,
    dests: &Destinations,
    control: Control,
    pen: Option<PenPage>,
) {
    let handover_src = dests
        .handover
        .and_then(|r| kimage.page_for(&mut FramePages, r.start));
    if let Some(src) = handover_src {
        let mut pages = FramePages;
        let page = pages.page(src);
        let mut h = Header::read_header(page).expect("built by chain_next");
        h.ttpages = control.ttpages as u64;
        h.copied = kimage.source_pages().len() as u64 * PAGE_SIZE;
        h.mmu_off = req.mmu_off as u64;
        h.write(page);
    }
    // The next kernel starts with its MMU and caches off: what was written in place must be
    // at the PoC (the relocation cleans only what it copies).
    for r in kimage.in_place() {
        arch::clean_inval_dcache(PhysAddr(r.start).to_virt(), r.size());
    }
    if req.mmu_off {
        // The copy reads sources and the list with caches off: push them to the PoC.
        for &pa in kimage.list_pages().iter().chain(kimage.source_pages()) {
            arch::clean_inval_dcache(PhysAddr(pa).to_virt(), PAGE_SIZE);
        }
    }
    *slot(req).lock() = Some(Loaded {
        kimage,
        segs,
        args: control.args,
        args_pa: control.args_pa,
        reloc_pa: control.reloc_pa,
        idmap_root: control.idmap_root,
        ttpages: control.ttpages,
        handover_src,
        pen,
    });
}

/// What [`build_control`] made.
struct Control {
    /// The relocation page's arguments.
    args: reloc::Args,
    /// The control page holding them.
    args_pa: u64,
    /// The relocation page.
    reloc_pa: u64,
    /// The one-page identity map's root.
    idmap_root: u64,
    /// Transitional page-table pages (linear-map copy + idmap).
    ttpages: usize,
}

/// Load step 4: from control pages (in no destination), the relocation page (code and
/// vectors), a zero table, the EL2 stub vectors (entered at EL2), the linear-map copy, the
/// one-page identity map and the argument block.
fn build_control(
    kimage: &mut Kimage,
    req: &LoadRequest,
    dests: &Destinations,
    entry_el: u64,
) -> Result<Control, KexecError> {
    // The relocation page: code and vectors.
    let code = reloc::code();
    let (reloc_pa, page) = control_page(kimage)?;
    page[..code.len()].copy_from_slice(code);
    arch::clean_inval_dcache(PhysAddr(reloc_pa).to_virt(), PAGE_SIZE);
    // A zero table for break-before-make (control pages come zeroed).
    let (zero_pa, _) = control_page(kimage)?;
    // The EL2 stub vectors, when EL2 is ours.
    let el2_vectors = if entry_el == 2 {
        let (pa, page) = control_page(kimage)?;
        // SAFETY: el2_stub_vectors is 2 KiB of position-independent code in kernel text.
        let stub = unsafe {
            core::slice::from_raw_parts(&raw const boot::symbols::el2_stub_vectors, 2048)
        };
        page[..2048].copy_from_slice(stub);
        arch::clean_inval_dcache(PhysAddr(pa).to_virt(), PAGE_SIZE);
        pa
    } else {
        0
    };
    arch::invalidate_icache();
    let mut tables = ControlTables { kimage };
    let copy = memory::copy_linear_map(&mut tables).map_err(KexecError::Tables)?;
    let (idmap, idmap_pages) =
        mm::transition::idmap_page(&mut tables, reloc_pa).map_err(KexecError::Tables)?;
    let kimage = tables.kimage;
    let args = reloc::Args {
        head: kimage.head,
        entry: dests.image.start,
        dtb: dests.dtb.start,
        ttbr1: copy.table.root(),
        zero: zero_pa,
        offset: LINEAR_BASE,
        el2: el2_vectors,
        mmu_off: req.mmu_off as u64,
        stamp: dests
            .handover
            .map_or(0, |r| r.start + chain::STAMP_OFFSET as u64),
    };
    let (args_pa, page) = control_page(kimage)?;
    page[..size_of::<reloc::Args>()].copy_from_slice(args.as_bytes());
    Ok(Control {
        args,
        args_pa,
        reloc_pa,
        idmap_root: idmap.root(),
        ttpages: copy.pages + idmap_pages,
    })
}

/// `(address, size)` as a `reg` value with `ac` and `sc` cells.
fn reg_cells(r: Region, ac: usize, sc: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for (n, cells) in [(r.start, ac), (r.size(), sc)] {
        for i in (0..cells).rev() {
            v.extend_from_slice(&((n >> (32 * i)) as u32).to_be_bytes());
        }
    }
    v
}

/// Frees a loaded crash kernel.
fn unload_crash() {
    CRASH.lock().take();
}

/// At a panic: the loaded crash kernel, if there is one and nothing holds its slot.
pub fn take_crash() -> Option<Loaded> {
    CRASH.try_lock()?.take()
}

/// `kexec -u`.
pub fn unload() {
    LOADED.lock().take();
}

/// Prepares the pen for spin-table CPUs: reuses the page the DTB's `cpu-release-addr`s already
/// point into if it holds a pen under a `/memreserve/`, or takes a fresh page that overlaps
/// none of `taken`. Writes the code and tables, and returns (PA, freshly allocated).
fn prepare_pen(sys: &crate::System, taken: &[Region]) -> Result<PenPage, KexecError> {
    use kexec::pen;
    let map = memory::memory_map().expect("memory::init ran");
    let slots = crate::smp::spin_slots();
    let pages: Vec<u64> = slots
        .iter()
        .filter_map(|&(slot, _)| sys.platform.cpus.get(slot).and_then(|c| c.release_addr))
        .map(|a| mm::align_down(a, PAGE_SIZE))
        .collect();
    let reserved = |pa: u64| {
        map.reserved.iter().any(|r| {
            r.kind == mm::memmap::ReservedKind::MemReserve
                && r.region.contains(&Region::new(pa, PAGE_SIZE))
        })
    };
    let holds_pen = |pa: u64| {
        let magic = PhysAddr(pa).to_virt().add(pen::MAGIC_OFFSET as u64);
        // SAFETY: reserved RAM, mapped by the linear map.
        unsafe { core::ptr::read_volatile(magic.as_ptr::<u64>()) == pen::MAGIC }
    };
    let reuse = pages
        .first()
        .copied()
        .filter(|&p| pages.iter().all(|&q| q == p) && reserved(p) && holds_pen(p));
    let pen = match reuse {
        Some(p) => PenPage::Reused(p),
        None => PenPage::Fresh(memory::FrameBuf::page_outside(taken).ok_or(KexecError::NoPenPage)?),
    };
    let pa = pen.pa();
    // SAFETY: fresh, or the DTB-reserved pen page that no CPU is in now (all run this kernel).
    let page = unsafe { memory::page_mut(pa) };
    page.fill(0);
    let code = pen::code();
    page[..code.len()].copy_from_slice(code);
    let mut put = |off: usize, v: u64| page[off..off + 8].copy_from_slice(&v.to_le_bytes());
    for i in 0..pen::SLOTS {
        put(pen::MPIDRS + 8 * i, u64::MAX);
    }
    for &(slot, mpidr) in &slots {
        put(pen::MPIDRS + 8 * slot, mpidr);
    }
    put(pen::MAGIC_OFFSET, pen::MAGIC);
    if crate::fault::skips("pen-iallu") {
        let at = code
            .chunks_exact(4)
            .position(|w| w == pen::IC_IALLU.to_le_bytes())
            .expect("the pen invalidates its I-cache");
        page[4 * at..4 * at + 4].copy_from_slice(&pen::NOP.to_le_bytes());
    }
    arch::clean_inval_dcache(pa.to_virt(), PAGE_SIZE);
    // Other CPUs run this code: every CPU's I-cache, not only this one's.
    if crate::fault::skips("pen-ialluis") {
        arch::invalidate_icache();
    } else {
        arch::invalidate_icache_all_cpus();
    }
    Ok(pen)
}

/// `kexec` alone: what is loaded.
pub fn show() {
    let l = LOADED.lock();
    let Some(l) = l.as_ref() else {
        return println!("kexec: nothing loaded");
    };
    for (i, s) in l.segs.iter().enumerate() {
        println!(
            "segment {i}  {}  {:>10} bytes  copied={} in_place={}  {}",
            s.dest,
            s.bytes,
            s.dest.size() - s.in_place,
            s.in_place,
            s.what
        );
    }
    println!(
        "kexec: entry={:#x} dtb={:#x} control={:#x} ttpages={} list={} sources={} control_pages={} el2={} mmu={} copied={} in_place={}",
        l.args.entry,
        l.args.dtb,
        l.reloc_pa,
        l.ttpages,
        l.kimage.list_pages().len(),
        l.kimage.source_pages().len(),
        l.kimage.control_pages().len(),
        if l.args.el2 != 0 { "stub" } else { "no" },
        if l.args.mmu_off != 0 { "off" } else { "on" },
        l.kimage.source_pages().len() as u64 * PAGE_SIZE,
        l.segs.iter().map(|s| s.in_place).sum::<u64>(),
    );
}

/// `kexec -e`: hands the machine to the loaded image. Returns only if nothing is loaded.
pub fn execute() -> Result<(), KexecError> {
    if LOADED.lock().is_none() {
        return Err(KexecError::NotLoaded);
    }
    // No CPU may stay behind in memory the next kernel owns.
    let pen = LOADED
        .lock()
        .as_ref()
        .and_then(|l| l.pen.as_ref().map(PenPage::pa));
    // A CPU that does not answer is named and left behind (the next kernel reports that it
    // could not have it).
    let stopped = crate::smp::stop_secondaries(pen, false).map_err(KexecError::Cpus)?;
    if stopped.stuck > 0 {
        println!(
            "kexec: going on without {} CPU(s) that did not stop",
            stopped.stuck
        );
    }
    let smp_down_us = stopped.us;
    let l = LOADED.lock().take().ok_or(KexecError::NotLoaded)?;
    enter(l, smp_down_us)
}

/// The last steps of a kexec: says where it goes, quiets interrupts, stamps the chain
/// header, and jumps to the relocation page. Also the panic path's.
pub fn enter(l: Loaded, smp_down_us: u64) -> ! {
    // Through the lock-free path: at a panic the console's lock may be held.
    use core::fmt::Write;
    let _ = writeln!(
        crate::drivers::console::emergency_print(),
        "kexec: entering {:#x} with DTB {:#x} ({}, MMU {} relocation)",
        l.args.entry,
        l.args.dtb,
        if l.args.el2 != 0 {
            "EL2 via the stub"
        } else {
            "EL1"
        },
        if l.args.mmu_off != 0 { "off" } else { "on" }
    );
    // Masked, the tick stopped, the GIC quiet: nothing the next kernel did not ask for.
    // `kexec.gic=dirty` (a test of the next kernel) leaves the boot CPU's timer running and
    // the GIC as it is: the distributor on, interrupts enabled, and, from inside a handler
    // (`kexec.from_irq`), the tick active with its priority held in the CPU interface.
    if SYSTEM.get().and_then(|s| s.cmdline.get("kexec.gic")) == Some("dirty") {
        arch::mask_all();
    } else {
        crate::irq::leave_all();
    }
    if let Some(src) = l.handover_src {
        let mut pages = FramePages;
        let page = pages.page(src);
        let mut h = Header::read_header(page).expect("built by chain_next");
        h.exec_ticks = arch::ticks();
        h.smp_down_us = smp_down_us;
        h.write(page);
        arch::clean_inval_dcache(PhysAddr(src).to_virt(), PAGE_SIZE);
    }
    if l.args.el2 != 0 {
        let r = arch::hyp_set_vectors(l.args.el2);
        if r != 0 {
            panic!("kexec: the EL2 stub refused HVC_SET_VECTORS ({r:#x})");
        }
    }
    let (reloc_pa, args_va, root) = (
        PhysAddr(l.reloc_pa),
        PhysAddr(l.args_pa).to_virt(),
        PhysAddr(l.idmap_root),
    );
    // Leaked on purpose: its pages are the next kernel's.
    core::mem::forget(l);
    // SAFETY: built at load time: code at reloc_pa (at the PoC) mapped by root, args in a
    // control page; interrupts are masked.
    unsafe { arch::kexec_jump(reloc_pa, args_va, root) }
}

/// `failalloc kexec ARGS...` (test builds): `kexec -l ARGS` with frame allocation 1, 2, ...
/// failing, until a load reaches no failure. After each attempt (and an unload) the free
/// frames must be what they were before: one `failalloc:` line per attempt says so.
#[cfg(feature = "fault-inject")]
pub fn failure_sweep(args: &[String]) -> Result<(), String> {
    let mut cmd = alloc::vec!["kexec".to_string(), "-l".to_string()];
    cmd.extend(args.iter().cloned());
    unload();
    let before = FRAMES.free_frames();
    for n in 1..=100_000u64 {
        let failed = FRAMES.failed_on_purpose();
        FRAMES.fail_nth(n);
        let result = command(&cmd);
        FRAMES.fail_nth(0);
        let hit = FRAMES.failed_on_purpose() > failed;
        unload();
        let free = FRAMES.free_frames();
        let outcome = match &result {
            Ok(()) => "loaded".to_string(),
            Err(e) => format!("error: {e}"),
        };
        println!("failalloc: n={n} failed={hit} free={free} before={before} outcome={outcome}");
        if free != before {
            return Err(format!(
                "allocation {n} failed and {} frames were not given back",
                before.abs_diff(free)
            ));
        }
        if !hit {
            println!("failalloc: done: a load makes {} allocations", n - 1);
            return Ok(());
        }
    }
    Err("no end: more than 100000 allocations in one load".into())
}

/// The `kexec` shell command.
pub fn command(args: &[String]) -> Result<(), String> {
    let c = Parsed::from_args(args)?;
    match c.action {
        None if c.image.is_none() => {
            show();
            Ok(())
        }
        Some(Action::Exec) => execute().map_err(|e| e.to_string()),
        Some(Action::Unload) => {
            unload();
            println!("kexec: unloaded");
            Ok(())
        }
        _ => {
            let crash = c.action == Some(Action::LoadCrash);
            let image = c.image.ok_or(
                "kexec -l needs an IMAGE (a file in the initramfs) or --self for this kernel",
            )?;
            let mut req = LoadRequest::new(image);
            if let Some(i) = c.initrd {
                req.initrd = i;
            }
            req.append = c.append;
            req.dtb = c.dtb;
            req.mmu_off = c.mmu_off;
            req.copy_all = c.copy_all;
            req.base = c.base;
            req.initrd_sha256 = c.initrd_sha256;
            req.dtb_sha256 = c.dtb_sha256;
            req.verify = c.verify;
            if crash {
                req.crash = Some(
                    crate::kexec::crash::region()
                        .ok_or("kexec -p needs the region crashkernel=SIZE reserves at boot")?,
                );
            }
            load(&req).map_err(|e| e.to_string())?;
            if crash {
                println!(
                    "kexec: crash kernel loaded: a panic or an unexpected exception enters it"
                );
            } else {
                show();
            }
            Ok(())
        }
    }
}

/// What a `kexec` command asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `-l`: load the next kernel.
    Load,
    /// `-p`: load a crash kernel.
    LoadCrash,
    /// `-e`: enter the loaded kernel.
    Exec,
    /// `-u`: unload it.
    Unload,
}

/// The digest an `--…-sha256=HEX` option names.
fn digest_option(o: &str, v: &str) -> Result<[u8; 32], String> {
    sha256::parse_hex(v).ok_or_else(|| format!("{o}: a SHA-256 is 64 hex digits"))
}

/// A `kexec` command line, read.
#[derive(Default)]
struct Parsed {
    action: Option<Action>,
    image: Option<ImageSource>,
    initrd: Option<InitrdSource>,
    append: Option<String>,
    dtb: Option<String>,
    mmu_off: bool,
    copy_all: bool,
    base: Option<u64>,
    initrd_sha256: Option<[u8; 32]>,
    dtb_sha256: Option<[u8; 32]>,
    verify: kernel::trust::Policy,
}

impl Parsed {
    /// Reads `kexec` and its options (`args[0]` is the command's name).
    fn from_args(args: &[String]) -> Result<Self, String> {
        let mut c = Parsed::default();
        let mut it = args.iter().skip(1).peekable();
        while let Some(a) = it.next() {
            match a.as_str() {
                // -l loads the next kernel, -p a crash kernel; an IMAGE may follow either.
                "-l" | "--load" | "-p" | "--load-panic" => {
                    c.action = Some(match a.as_str() {
                        "-p" | "--load-panic" => Action::LoadCrash,
                        _ => Action::Load,
                    });
                    if let Some(next) = it.next_if(|n| !n.starts_with('-')) {
                        c.image = Some(ImageSource::File(next.clone()));
                    }
                }
                "--self" => c.image = Some(ImageSource::Itself),
                "-e" | "--exec" => c.action = Some(Action::Exec),
                "-u" | "--unload" => c.action = Some(Action::Unload),
                "--mmu-off" => c.mmu_off = true,
                "--copy-all" => c.copy_all = true,
                "--verify" => c.verify = kernel::trust::Policy::Enforce,
                // The IMAGE may also come after the options, as kexec-tools takes it.
                f if !f.starts_with('-') && c.image.is_none() => {
                    c.image = Some(ImageSource::File(f.to_string()));
                }
                o => c.option(o)?,
            }
        }
        Ok(c)
    }

    /// An `--option=VALUE`.
    fn option(&mut self, o: &str) -> Result<(), String> {
        if let Some(v) = o.strip_prefix("--initrd=") {
            self.initrd = Some(InitrdSource::File(v.to_string()));
        } else if let Some(v) = o.strip_prefix("--append=") {
            self.append = Some(v.to_string());
        } else if let Some(v) = o.strip_prefix("--dtb=") {
            self.dtb = Some(v.to_string());
        } else if let Some(v) = o.strip_prefix("--initrd-sha256=") {
            self.initrd_sha256 = Some(digest_option(o, v)?);
        } else if let Some(v) = o.strip_prefix("--dtb-sha256=") {
            self.dtb_sha256 = Some(digest_option(o, v)?);
        } else if let Some(v) = o.strip_prefix("--verify=") {
            self.verify = kernel::trust::Policy::parse(v)
                .ok_or_else(|| format!("{o}: expected off, warn or enforce"))?;
        } else if let Some(v) = o.strip_prefix("--base=") {
            let b = kernel::formats::cmdline::parse_size(v).map_err(|e| format!("{o}: {e}"))?;
            if !b.is_multiple_of(place::IMAGE_ALIGN) {
                return Err(format!("{o}: not 2 MiB aligned"));
            }
            self.base = Some(b);
        } else {
            return Err(KexecError::UnknownOption(o.to_string()).to_string());
        }
        Ok(())
    }
}
