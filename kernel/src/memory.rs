//! Memory bring-up: the memory map, the frame allocator, the heap, and the kernel's own
//! page tables (image W^X with guard pages, linear map of all RAM, device window), which
//! replace the boot code's early tables.

use crate::arch;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use linked_list_allocator::LockedHeap;
use mm::addr::{PhysAddr, VirtAddr};
use mm::frame::Frames;
use mm::layout::{DEVICE_BASE, DEVICE_SIZE};

/// Where the linear map shows physical address `pa` (a frame, a table, RAM in a region).
fn linear(pa: u64) -> VirtAddr {
    PhysAddr(pa).to_virt()
}
use mm::memmap::{MemoryMap, Region, ReservedKind};
use mm::paging::{Attrs, MapError, MapStats, PageTable, TableAlloc, ENTRIES};
use mm::{align_down, align_up, PAGE_SIZE};
use spin::Mutex;

/// Heap size. The heap holds bookkeeping, the DTB and the DTBs kexec edits (up to 2 MiB each,
/// several copies at once); file data and kexec segments live in frames.
const HEAP_SIZE: usize = 8 << 20;
/// Tables available before the linear map exists (the boot-time tables come from here).
const BOOT_TABLES: usize = 32;

#[repr(C, align(4096))]
struct Pool<const N: usize>(UnsafeCell<[[u64; ENTRIES]; N]>);
// SAFETY: the pool is only handed out under the KERNEL_MAP lock (or before SMP).
unsafe impl<const N: usize> Sync for Pool<N> {}

#[repr(C, align(16))]
struct HeapSpace(UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: given once to the heap allocator, which has its own lock.
unsafe impl Sync for HeapSpace {}

/// In its own section (`boot/kernel.ld`), outside the BSS that the boot code zeroes.
#[link_section = ".bss.kernel_heap"]
static HEAP_SPACE: HeapSpace = HeapSpace(UnsafeCell::new([0; HEAP_SIZE]));
static TABLE_POOL: Pool<BOOT_TABLES> = Pool(UnsafeCell::new([[0; ENTRIES]; BOOT_TABLES]));

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Every free frame of RAM.
pub static FRAMES: Frames = Frames::new();

static LINEAR_READY: AtomicBool = AtomicBool::new(false);

/// Page-table pages and entries used by each mapping, for `mem`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableUse {
    /// The kernel image.
    pub image: MapStats,
    /// The linear map.
    pub linear: MapStats,
    /// Device registers.
    pub devices: MapStats,
}

struct KernelMap {
    pt: PageTable,
    alloc: KernelTables,
    next_device_va: u64,
    next_stack_va: u64,
    usage: TableUse,
}

static KERNEL_MAP: Mutex<Option<KernelMap>> = Mutex::new(None);
static MEMORY_MAP: spin::Once<MemoryMap> = spin::Once::new();

/// Tables from the pool in the image (reached through the image mapping), then from frames
/// (reached through the linear map, once it is live).
struct KernelTables {
    used: usize,
    image_pa: u64,
}

impl KernelTables {
    fn pool_va(&self) -> u64 {
        TABLE_POOL.0.get() as u64
    }
    fn pool_pa(&self) -> u64 {
        mm::layout::kimage_pa(VirtAddr(self.pool_va()), PhysAddr(self.image_pa)).get()
    }
}

// SAFETY: the kernel's tables are the pool's pages (in the image, mapped where the image is)
// or frames taken for them, reached through the linear map; only the kernel-map lock's
// holder walks them.
unsafe impl TableAlloc for KernelTables {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.used < BOOT_TABLES {
            self.used += 1;
            return Some(self.pool_pa() + (self.used as u64 - 1) * PAGE_SIZE);
        }
        if !LINEAR_READY.load(Ordering::Acquire) {
            return None;
        }
        let pa = FRAMES.alloc(1)?;
        // SAFETY: a fresh frame, mapped by the linear map.
        unsafe { core::ptr::write_bytes(linear(pa).as_mut_ptr::<u8>(), 0, PAGE_SIZE as usize) };
        Some(pa)
    }
    fn table_ptr(&self, pa: u64) -> core::ptr::NonNull<[u64; ENTRIES]> {
        let pool = self.pool_pa()..self.pool_pa() + BOOT_TABLES as u64 * PAGE_SIZE;
        let va = if pool.contains(&pa) {
            pa - self.pool_pa() + self.pool_va()
        } else {
            linear(pa).get()
        };
        core::ptr::NonNull::new(va as *mut _).expect("kernel VAs are not 0")
    }
}

/// The memory map from the UEFI memory map that `/chosen` names (an EFI stub's, ours or
/// Linux's): its usable descriptors are the RAM, everything else and the map itself are
/// reserved, and so is the first page of every UEFI configuration table that lies in RAM (a
/// later kernel that calls the runtime services reads them; their sizes are not known to a
/// kernel that does not know each table). Read through the early windows: call before
/// [`init`], while the boot code's tables are live.
pub fn uefi_memory_map(
    fdt: &fdt::Fdt<'_>,
    info: kernel::platform::UefiInfo,
) -> Result<MemoryMap, alloc::string::String> {
    use alloc::format;
    use alloc::string::ToString;
    /// What one early window holds.
    const WINDOW: u64 = 2 << 20;
    let len = info.mmap.size();
    if len > WINDOW {
        return Err(format!(
            "UEFI memory map: {len} bytes at {} (/chosen linux,uefi-mmap-size), more than the {WINDOW} this kernel reads",
            info.mmap
        ));
    }
    // SAFETY: before `init`, so the boot tables are live; the map is RAM the stub wrote.
    let va = unsafe { arch::early_window(arch::EarlyWindow::UefiMemoryMap, info.mmap.start, len) }
        .ok_or_else(|| format!("UEFI memory map: cannot map {}", info.mmap))?;
    // SAFETY: the window maps [start, start + len) read-only until `init` switches tables.
    let bytes = unsafe { core::slice::from_raw_parts(va as *const u8, len as usize) };
    let descriptors =
        mm::uefi::parse(bytes, info.desc_size, info.desc_ver).map_err(|e| e.to_string())?;
    let mut map = MemoryMap::from_uefi(fdt, &descriptors, info.mmap).map_err(|e| e.to_string())?;
    let mut read = |pa: u64, buf: &mut [u8]| {
        let len = buf.len() as u64;
        // SAFETY: as above; the system table and its array are in memory the firmware
        // owns (runtime services data), where reads have no side effects.
        let window = unsafe { arch::early_window(arch::EarlyWindow::UefiTables, pa, len) };
        let Some(va) = window else {
            return false;
        };
        // SAFETY: the window maps [pa, pa + buf.len()).
        buf.copy_from_slice(unsafe { core::slice::from_raw_parts(va as *const u8, buf.len()) });
        true
    };
    let tables = kernel::formats::efi::config_tables(info.system_table, &mut read)
        .map_err(|e| e.to_string())?;
    for (guid, addr) in tables {
        let page = Region::new(align_down(addr, PAGE_SIZE), PAGE_SIZE);
        if map
            .banks
            .iter()
            .any(|b| b.start <= page.start && page.end <= b.end)
        {
            map.reserve(page, ReservedKind::UefiConfigTable, &format!("{guid}"));
        }
    }
    Ok(map)
}

/// Gives the heap its memory. Call first.
pub fn init_heap() {
    // SAFETY: HEAP_SPACE is used by nothing else, and this runs once, before any allocation.
    unsafe { HEAP.lock().init(HEAP_SPACE.0.get() as *mut u8, HEAP_SIZE) };
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// What [`init`] found, for the banner and `mem`.
pub struct MemInfo {
    /// Total RAM in bytes.
    pub total: u64,
}

/// What the boot loader (or the previous kernel) left in RAM for this one: kept out of the
/// frame allocator.
pub struct BootRanges {
    /// Where the kernel image was loaded.
    pub image_pa: u64,
    /// The DTB.
    pub dtb: Region,
    /// The initrd, if any.
    pub initrd: Option<Region>,
    /// The kexec chain's hand-over block, if any.
    pub handover: Option<Region>,
    /// The ESP's files, as the EFI stub read them, if any.
    pub esp_files: Option<Region>,
}

impl BootRanges {
    /// Marks every range reserved in `map`.
    fn reserve_in(&self, map: &mut MemoryMap) {
        let image = Region::new(
            self.image_pa,
            align_up(boot::symbols::image_size(), PAGE_SIZE),
        );
        map.reserve(image, ReservedKind::Kernel, "");
        map.reserve(self.dtb, ReservedKind::Dtb, "");
        if let Some(r) = self.initrd {
            map.reserve(r, ReservedKind::Initrd, "");
        }
        if let Some(r) = self.handover {
            map.reserve(r, ReservedKind::Handover, "");
        }
        if let Some(r) = self.esp_files {
            map.reserve(r, ReservedKind::EspFiles, "");
        }
        if let Some(page) = map.boot_record_page() {
            map.reserve(page, ReservedKind::BootRecord, "");
            BOOT_RECORD.call_once(|| PhysAddr(page.start));
        }
    }
}

static BOOT_RECORD: spin::Once<PhysAddr> = spin::Once::new();

/// The boot record's page (see [`MemoryMap::boot_record_page`]), reserved at boot; `None`
/// if this boot could not keep it.
pub fn boot_record_page() -> Option<PhysAddr> {
    BOOT_RECORD.get().copied()
}

/// Device registers [`init`] maps in the device window on the way.
pub struct EarlyDevices<'a> {
    /// The console UART.
    pub console: Option<Region>,
    /// The GICv3 redistributor regions (to stop LPIs a previous kernel left on).
    pub redistributors: &'a [Region],
}

/// Builds the memory map (the DTB's, plus `boot`'s ranges), builds the kernel's own tables
/// (the image W^X, the linear map of RAM, `devices`) and switches to them, takes over the
/// GIC's LPI tables, and gives every free frame to the allocator. Returns the console's new
/// VA.
pub fn init(
    map: Result<MemoryMap, mm::memmap::MemMapError>,
    boot: &BootRanges,
    devices: &EarlyDevices<'_>,
) -> (Result<MemInfo, mm::memmap::MemMapError>, Option<u64>) {
    let mut alloc = KernelTables {
        used: 0,
        image_pa: boot.image_pa,
    };
    let mut pt = PageTable::new(&mut alloc).expect("boot table pool");
    let mut usage = TableUse {
        image: map_image(&mut pt, &mut alloc, boot.image_pa),
        ..TableUse::default()
    };
    let result = map.map(|mut map| {
        boot.reserve_in(&mut map);
        for r in map.linear_regions() {
            match pt.map(
                &mut alloc,
                linear(r.start).get(),
                r.start,
                r.size(),
                Attrs::DATA,
            ) {
                Ok(s) => usage.linear += s,
                Err(e) => panic!("linear map of {r}: {e}"),
            }
        }
        map
    });

    let mut km = KernelMap {
        pt,
        alloc,
        next_device_va: DEVICE_BASE,
        next_stack_va: mm::layout::STACKS_BASE,
        usage: TableUse::default(),
    };
    let console_va = devices
        .console
        .map(|r| map_device_locked(&mut km, r).expect("mapping the console"));
    let redist_va: alloc::vec::Vec<(usize, usize)> = devices
        .redistributors
        .iter()
        .filter_map(|&r| {
            Some((
                map_device_locked(&mut km, r).ok()? as usize,
                r.size() as usize,
            ))
        })
        .collect();
    km.usage = TableUse {
        devices: km.usage.devices,
        ..usage
    };

    arch::publish_tables();
    // The boot identity map is still in TTBR0.
    // SAFETY: the new tables map the image (text, rodata, data, BSS, stacks, early tables)
    // at the linked addresses, as the early tables did.
    unsafe { arch::switch_kernel_tables(km.pt.root(), boot.image_pa) };
    // Before any frame is handed out: LPI tables that a previous kernel left the GIC
    // using are stopped, or else kept out of the allocator.
    // SAFETY: `redist_va` maps the DTB's GICv3 redistributor regions as Device memory.
    let lpis = unsafe { arch::gic::take_over_lpis(&redist_va) };
    let result = result.map(|map| hand_to_allocator(map, &lpis));
    LIVE_LPIS.call_once(|| lpis);
    REDISTRIBUTORS.call_once(|| redist_va);
    LINEAR_READY.store(result.is_ok(), Ordering::Release);
    *KERNEL_MAP.lock() = Some(km);
    (result, console_va)
}

/// The kernel image's mappings, from the linker's symbols: text, read-only data, data and
/// BSS, the two stacks above their guard pages (left unmapped), the early tables. Returns
/// what the mappings took.
fn map_image(pt: &mut PageTable, alloc: &mut KernelTables, image_pa: u64) -> MapStats {
    use boot::symbols::*;
    // SAFETY: linker symbols; only their addresses are taken, never their contents.
    let [text, etext, erodata, stack_guard, boot_bottom, boot_top, exc_guard, exc_bottom, exc_top, tables, end] =
        unsafe {
            [
                &_text,
                &_etext,
                &_erodata,
                &__boot_stack_guard,
                &__boot_stack_bottom,
                &__boot_stack_top,
                &__exception_stack_guard,
                &__exception_stack_bottom,
                &__exception_stack_top,
                &__early_tables,
                &_end,
            ]
        }
        .map(sym);
    debug_assert!(stack_guard + PAGE_SIZE == boot_bottom && exc_guard + PAGE_SIZE == exc_bottom);
    let pa = |va: u64| mm::layout::kimage_pa(VirtAddr(va), PhysAddr(image_pa)).get();
    [
        (text, etext, Attrs::TEXT),
        (etext, erodata, Attrs::RODATA),
        (erodata, stack_guard, Attrs::DATA),
        (boot_bottom, boot_top, Attrs::DATA),
        (exc_bottom, exc_top, Attrs::DATA),
        (tables, align_up(end, PAGE_SIZE), Attrs::DATA),
    ]
    .into_iter()
    .fold(MapStats::default(), |mut total, (start, stop, attrs)| {
        total += pt
            .map(alloc, start, pa(start), stop - start, attrs)
            .expect("mapping the kernel image");
        total
    })
}

/// Keeps the LPI tables a previous kernel left the GIC writing out of the map's free memory,
/// gives the rest to [`FRAMES`], and publishes the map.
fn hand_to_allocator(mut map: MemoryMap, lpis: &[arch::gic::LiveLpis]) -> MemInfo {
    for l in lpis.iter().filter(|l| !l.disabled) {
        if let Some((prop, pend)) = kernel::platform::gicv3::lpi_tables(l.propbaser, l.pendbaser) {
            map.reserve(prop, ReservedKind::GicLpiTables, "property");
            map.reserve(pend, ReservedKind::GicLpiTables, "pending");
        }
    }
    for r in map.free_regions() {
        FRAMES.add_range(r.start, r.end);
    }
    let info = MemInfo {
        total: map.total_bytes(),
    };
    MEMORY_MAP.call_once(|| map);
    info
}

static LIVE_LPIS: spin::Once<alloc::vec::Vec<arch::gic::LiveLpis>> = spin::Once::new();
static REDISTRIBUTORS: spin::Once<alloc::vec::Vec<(usize, usize)>> = spin::Once::new();

/// The GICv3 redistributor regions `init` mapped (VA, size), in the DTB's order: the GIC
/// driver uses these mappings too.
pub fn redistributor_windows() -> &'static [(usize, usize)] {
    REDISTRIBUTORS.get().map_or(&[], |v| v.as_slice())
}

/// The redistributors a previous kernel left with LPIs on, as found at boot.
pub fn live_lpis() -> &'static [arch::gic::LiveLpis] {
    LIVE_LPIS.get().map_or(&[], |v| v.as_slice())
}

fn map_device_locked(km: &mut KernelMap, r: Region) -> Result<u64, MapError> {
    let start = align_down(r.start, PAGE_SIZE);
    let len = align_up(r.end, PAGE_SIZE) - start;
    let va = km.next_device_va;
    assert!(va + len <= DEVICE_BASE + DEVICE_SIZE, "device window full");
    let s = km.pt.map(&mut km.alloc, va, start, len, Attrs::DEVICE)?;
    km.usage.devices += s;
    km.next_device_va = va + len;
    arch::publish_tables();
    Ok(va + (r.start - start))
}

/// Page-table use per mapping.
pub fn table_use() -> TableUse {
    KERNEL_MAP
        .lock()
        .as_ref()
        .map(|k| k.usage)
        .unwrap_or_default()
}

/// A copy of the memory map.
pub fn memory_map() -> Option<&'static MemoryMap> {
    MEMORY_MAP.get()
}

/// The bytes of physical range `r` through the linear map.
///
/// # Safety
/// `r` must be RAM in the linear map that nothing writes while the slice lives.
pub unsafe fn phys_slice(r: Region) -> &'static [u8] {
    // SAFETY: the caller guarantees the range is mapped and stable.
    unsafe { core::slice::from_raw_parts(linear(r.start).as_ptr(), r.size() as usize) }
}

/// The 4 KiB page at physical address `pa`, through the linear map.
///
/// # Safety
/// `pa` must be a page-aligned RAM page that the caller owns (or that nothing else uses) for
/// as long as the slice lives.
pub unsafe fn page_mut(pa: PhysAddr) -> &'static mut [u8] {
    // SAFETY: the caller guarantees the page is RAM (so in the linear map) and not aliased.
    unsafe { core::slice::from_raw_parts_mut(pa.to_virt().as_mut_ptr(), PAGE_SIZE as usize) }
}

/// Physically contiguous frames, owned: given back to [`FRAMES`] when dropped (unless
/// [`FrameBuf::leak`]ed), and read and written as bytes through the linear map.
pub struct FrameBuf {
    pa: u64,
    pages: u64,
    /// Bytes in use (at most `pages` pages).
    len: usize,
}

/// Why [`FrameBuf::gunzip`] failed.
#[derive(Debug)]
pub enum GunzipError {
    /// The data is not good gzip.
    Gzip(kernel::formats::gzip::GzipError),
    /// Its trailer announces more than free memory (truncated or corrupt?).
    TooLarge {
        /// Bytes the trailer announces.
        announced: u64,
        /// Bytes free.
        free: u64,
    },
    /// Free memory is not contiguous enough for it.
    NoMemory(u64),
}

impl FrameBuf {
    /// Allocates `bytes` (at least one page) of contiguous frames.
    pub fn alloc(bytes: u64) -> Option<Self> {
        let pages = align_up(bytes.max(1), PAGE_SIZE) / PAGE_SIZE;
        let pa = FRAMES.alloc(pages)?;
        Some(FrameBuf {
            pa,
            pages,
            len: bytes as usize,
        })
    }

    /// One page that overlaps none of `avoid`.
    pub fn page_outside(avoid: &[Region]) -> Option<Self> {
        let pa = kexec::kimage::alloc_outside(&mut FramePages, avoid)?;
        Some(FrameBuf {
            pa,
            pages: 1,
            len: PAGE_SIZE as usize,
        })
    }

    /// Inflates gzip `data` into fresh frames, sized by its trailer (checked against free
    /// memory first); the buffer's length is the inflated size.
    pub fn gunzip(data: &[u8]) -> Result<Self, GunzipError> {
        use kernel::formats::gzip;
        let announced = gzip::announced_size(data).map_err(GunzipError::Gzip)? as u64;
        let free = FRAMES.free_frames() * PAGE_SIZE;
        if announced > free {
            return Err(GunzipError::TooLarge { announced, free });
        }
        let mut buf = Self::alloc(announced).ok_or(GunzipError::NoMemory(announced))?;
        let n = gzip::decompress_into(data, &mut buf).map_err(GunzipError::Gzip)?;
        buf.len = n;
        Ok(buf)
    }

    /// Its first frame.
    pub fn pa(&self) -> PhysAddr {
        PhysAddr(self.pa)
    }

    /// Keeps the frames for good (the initramfs's files, the crash kernel's region).
    pub fn leak(self) -> &'static mut [u8] {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: frames this buffer owned, now owned by nobody else for ever.
        unsafe { core::slice::from_raw_parts_mut(linear(me.pa).as_mut_ptr(), me.len) }
    }
}

impl core::ops::Deref for FrameBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes of frames this buffer owns, mapped by the linear map.
        unsafe { core::slice::from_raw_parts(linear(self.pa).as_ptr(), self.len) }
    }
}

impl core::ops::DerefMut for FrameBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(linear(self.pa).as_mut_ptr(), self.len) }
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        FRAMES.free(self.pa, self.pages);
    }
}

/// The physical address of `len` bytes at `va`, if they are physically contiguous: in the
/// linear map, or in the kernel image (loaded in one piece). Device DMA uses it; a buffer
/// elsewhere (a secondary CPU's stack, mapped page by page) gives `None`.
pub fn contiguous_pa(va: VirtAddr, len: u64) -> Option<PhysAddr> {
    use mm::layout::{KIMAGE_VADDR, LINEAR_BASE, LINEAR_SIZE};
    let end = va.get().checked_add(len)?;
    if va.get() >= LINEAR_BASE && end <= LINEAR_BASE + LINEAR_SIZE {
        return Some(mm::layout::virt_to_phys(va));
    }
    let image_pa = PhysAddr(KERNEL_MAP.lock().as_ref()?.alloc.image_pa);
    if va.get() >= KIMAGE_VADDR && end <= KIMAGE_VADDR + boot::symbols::image_size() {
        return Some(mm::layout::kimage_pa(va, image_pa));
    }
    None
}

/// Maps device registers `r` in the device window and returns their VA.
pub fn map_device(r: Region) -> Result<u64, MapError> {
    let mut km = KERNEL_MAP.lock();
    let km = km.as_mut().expect("memory::init ran");
    map_device_locked(km, r)
}

/// Copies the linear map of the kernel's tables into tables from `dst` (kexec's transitional
/// TTBR1).
pub fn copy_linear_map(dst: &mut impl TableAlloc) -> Result<mm::transition::Copy, MapError> {
    let km = KERNEL_MAP.lock();
    let km = km.as_ref().expect("memory::init ran");
    mm::transition::copy_range(
        &km.pt,
        &km.alloc,
        dst,
        mm::layout::LINEAR_BASE,
        mm::layout::LINEAR_BASE + mm::layout::LINEAR_SIZE,
    )
}

/// Single frames as kexec's loader takes them, reached through the linear map.
pub struct FramePages;

impl kexec::kimage::PhysPages for FramePages {
    fn alloc(&mut self) -> Option<u64> {
        FRAMES.alloc(1)
    }
    fn free(&mut self, pa: u64) {
        FRAMES.free(pa, 1)
    }
    fn page(&mut self, pa: u64) -> &mut [u8] {
        // SAFETY: `pa` is a frame the loader allocated and owns.
        unsafe { page_mut(PhysAddr(pa)) }
    }
    fn claim(&mut self, pa: u64, count: u64) -> u64 {
        FRAMES.claim(pa, count)
    }
    fn free_run(&mut self, pa: u64, count: u64) {
        FRAMES.free_run(pa, count)
    }
}

/// Allocates a stack of `bytes` (a multiple of 4 KiB) in frames, maps it in the stack window
/// above an unmapped guard page, and returns its top VA.
pub fn map_stack(bytes: u64) -> Result<u64, MapError> {
    let mut km = KERNEL_MAP.lock();
    let km = km.as_mut().expect("memory::init ran");
    let pa = FRAMES
        .alloc(bytes / PAGE_SIZE)
        .ok_or(MapError::OutOfTables {
            va: km.next_stack_va,
        })?;
    let va = km.next_stack_va + PAGE_SIZE; // the guard page stays unmapped
    assert!(
        va + bytes <= mm::layout::STACKS_BASE + mm::layout::STACKS_SIZE,
        "stack window full"
    );
    km.pt.map(&mut km.alloc, va, pa, bytes, Attrs::DATA)?;
    km.next_stack_va = va + bytes;
    arch::publish_tables();
    Ok(va + bytes)
}

/// Physical address of the kernel's root table (for a secondary CPU's TTBR1).
pub fn kernel_root() -> u64 {
    KERNEL_MAP
        .lock()
        .as_ref()
        .expect("memory::init ran")
        .pt
        .root()
}
