/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cache-model: a QEMU TCG plugin that reports what real caches would get wrong.
 *
 * QEMU's TCG has no caches: every access reaches memory. On a Cortex-A72 a store made with
 * the MMU and D-cache on stays in a write-back line until it is cleaned, and code is fetched
 * through an instruction cache that must be invalidated after code is written. This plugin
 * keeps, per 64-byte physical line, what such caches would hold and counts every access
 * that real hardware would get wrong:
 *
 *   nc-load-dirty      a non-cacheable load of a line still dirty in the D-cache
 *                      (it reads the stale memory below);
 *   nc-store-dirty     a non-cacheable store to a line still dirty (a later eviction of the
 *                      dirty line overwrites it);
 *   cached-after-nc    a cacheable access to a line written non-cacheably while it may still
 *                      be in the D-cache, not invalidated since (it may hit the stale copy);
 *   fetch-stale        an instruction fetch of code written since it was last cleaned to the
 *                      PoU and invalidated from *this CPU's* I-cache (in that order), when
 *                      that I-cache may hold the old code: the CPU fetched from the line, or
 *                      ran with its MMU and I-cache on (speculation), since it last emptied
 *                      its I-cache; whether SCTLR.I is on or off now (booting.rst: the
 *                      I-cache, on or off, must hold no stale entries);
 *   fetch-nc-dirty     an instruction fetch with SCTLR.I off (it reads memory) of a line
 *                      still dirty in the D-cache;
 *   tlb-stale          an access through a translation that differs from the one this CPU
 *                      used before, with no TLB invalidation reaching this CPU in between
 *                      (another CPU's local `tlbi`, or none).
 *
 * A line may be in the D-cache unless it was invalidated while no CPU had its D-cache on and
 * no CPU has turned it on since (caches are empty at reset; with the MMU on, any mapped line
 * may be allocated speculatively). Accesses are cacheable when the current EL's SCTLR has M
 * and C set (EL0/1: SCTLR_EL1, EL2: SCTLR_EL2), read at the start of every translation block.
 * The I side is tracked per 4-byte word, so data next to code in one line is not code.
 *
 * A `dc`/`ic` operand is a VA, and plugin API 4 cannot translate it. It is placed as the CPU
 * would: VA = PA with the MMU off; else a page this plugin saw accessed (data or code) since
 * the last TLBI; else the VA - PA of the latest access in the same 2 MiB (the kernel image and
 * the linear map are mapped at one offset each); else, in the 48-bit linear map
 * [0xffff000000000000, 0xffff800000000000), its offset as last seen (`linear=BASE` gives it
 * before any access). Instruction fetches with the MMU on are placed through QEMU's host
 * pointer, calibrated against MMU-off fetches in the same GiB of host memory. The report counts
 * what could not be placed (`unresolved_dc`, `unresolved_fetch`).
 *
 * A generation runs from CPU 0 turning its EL1 MMU on to the next time: one kernel's life,
 * its kexec hand-over and the next kernel's entry with the MMU off. Violations are counted
 * per generation (`gen=N violations=N mmu_off=N`), so a kexec test can hold the kernels it
 * is about to account and leave a passenger's own habits (Linux's text patching) to it.
 *
 * Every CPU: the cores' D-caches are coherent with each other, so one D-cache state per line
 * serves all of them; each CPU has its own SCTLR (by EL), its own I-cache (`ic iallu` reaches
 * only it; `ic ialluis` and `ic ivau` reach all) and its own TLB (`tlbi` without IS/OS
 * reaches only it). A CPU that is reset (PSCI CPU_ON after CPU_OFF: SCTLR_EL1 back at its
 * reset value; or a CPU at EL3 at its reset vector) starts with empty caches and TLB; a CPU
 * that never resets (a spin-table pen, a crash stop) keeps its state.
 * Which CPU runs: QEMU passes each callback a vCPU index, but under round-robin TCG
 * (`-accel tcg,thread=single`) that index is a constant of the translation block, i.e. the
 * CPU that translated it, not the one running it. So with several vCPUs the model reads
 * VMPIDR_EL2 (a CPU with EL2 or EL3; every boot path here sets it to MPIDR_EL1) at every
 * block and attributes what follows to that CPU. A CPU without EL2 offers no such register:
 * there, run QEMU multi-threaded (`-accel tcg,thread=multi`, where the index is read at run
 * time) and say `cpus=index`.
 *
 * What it cannot see: page-table walks (tables written with the MMU off and walked through
 * a cacheable TCR; a TLB entry is only known from the accesses made through it), memory
 * attributes from MAIR (every RAM access with M and C set counts as write-back cacheable,
 * every device access is ignored), speculation beyond "any line may be cached while a
 * D-cache is on", set/way maintenance (counted, not modelled), cross-modification that the
 * architecture allows (patching a B or NOP that may run either way: reported as a stale
 * fetch), the point of unification of a given core (taken as the L2, shared), and the timing
 * between CPUs (callbacks run in one order; real CPUs race).
 *
 * Arguments: out=FILE (report there instead of QEMU's log), linear=BASE (hex),
 * details=N (violations described one by one, default 20), cpus=mpidr|index (how to tell
 * CPUs apart; default mpidr when the CPU has VMPIDR_EL2, which one vCPU does not need).
 * The report ends with a line `cache-model: violations=N`.
 */
#include "qemu-plugin-api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 4;

#define LINE_SHIFT 6
#define PAGE_SHIFT 12
/* Line states live in chunks of 2 MiB of physical memory, allocated when first touched. */
#define CHUNK_SHIFT 21
#define LINES_PER_CHUNK (1u << (CHUNK_SHIFT - LINE_SHIFT))
#define PA_BITS 42
#define MAX_VCPUS 16

/* Line flags. */
#define DIRTY 0x01      /* written cacheably, not cleaned to the PoC */
#define NC_WRITTEN 0x02 /* written non-cacheably while a stale copy may be cached */
#define I_DIRTY 0x04    /* written; the D side is not clean to the PoU yet */
#define I_STALE 0x08    /* D side coherent at `itime`, I-cache not invalidated since */

struct line {
    uint32_t itime;         /* event time at which I_STALE was set */
    uint32_t uncached_from; /* cacheable epoch at which it was invalidated, or UNKNOWN */
    uint8_t flags;
    uint16_t iwords;        /* 4-byte words written since the I side was last coherent */
    uint32_t reported;      /* CPUs told of a stale fetch since the line last changed */
    uint32_t stale_for;     /* with I_STALE: CPUs whose I-cache may hold the old code */
    uint16_t fetched_in[MAX_VCPUS]; /* each CPU's I-cache epoch when it last fetched here */
    uint64_t writer;        /* PC of the last store, for the report */
};
#define UNKNOWN UINT32_MAX

enum violation {
    NC_LOAD_DIRTY,
    NC_STORE_DIRTY,
    CACHED_AFTER_NC,
    FETCH_STALE,
    FETCH_NC_DIRTY,
    TLB_STALE,
    N_VIOLATIONS
};
static const char *violation_names[N_VIOLATIONS] = {
    "nc-load-dirty", "nc-store-dirty", "cached-after-nc", "fetch-stale", "fetch-nc-dirty",
    "tlb-stale",
};

enum op { DC_CIVAC, DC_CVAC, DC_CVAU, DC_IVAC, DC_ZVA, DC_SETWAY, IC_IALLU, IC_IALLUIS,
          IC_IVAU, TLBI, TLBI_IS, MSR_TTBR0, MSR_TTBR1, N_OPS };
static const char *op_names[N_OPS] = {
    "dc_civac", "dc_cvac", "dc_cvau", "dc_ivac", "dc_zva", "dc_setway", "ic_iallu",
    "ic_ialluis", "ic_ivau", "tlbi", "tlbi_is", "msr_ttbr0", "msr_ttbr1",
};

struct vcpu {
    bool seen;        /* has run */
    bool cacheable;   /* the current EL's M and C */
    bool mmu_on;      /* the current EL's M */
    bool icache_on;   /* the current EL's I */
    bool el1_mmu_on;  /* SCTLR_EL1.M as last seen at EL0/1 */
    unsigned int el;  /* the current EL */
    uint64_t sctlr_el1; /* as last seen (a reset puts it back at its reset value) */
    uint32_t iallu_time; /* when its I-cache was last emptied */
    uint16_t iepoch;     /* counts its I-cache emptyings (never 0) */
    bool spec;           /* ran with MMU and I-cache on since: may hold any line */
    GHashTable *pages;   /* VA page -> PA page + 1, learned from accesses */
    GHashTable *regions; /* VA >> REGION_SHIFT -> VA - PA of the latest access there */
    uint64_t last_va_page, last_pa_page;
    uint64_t linear_offset; /* VA - PA in the linear map, 0 until an access there */
};
/* The linear map and the kernel image are mapped at one offset each, over at least this. */
#define REGION_SHIFT 21
/* The kernel's linear map with 48-bit VAs (arm64 Linux and this kernel): one VA - PA offset
 * over [LINEAR_START, LINEAR_END). */
#define LINEAR_START 0xffff000000000000ull
#define LINEAR_END 0xffff800000000000ull

/* Register handles (the same for every vCPU), read in the running vCPU's context. */
static struct qemu_plugin_register *reg_x[31], *reg_cpsr, *reg_sctlr_el1, *reg_sctlr_el2,
    *reg_sctlr_el3, *reg_vmpidr, *reg_rvbar_el3;
/* Handles are small integers (x0's may be NULL): which ones were found. */
static uint32_t have_x;
static bool have_regs;
/* Which system registers were found. */
#define HAVE_CPSR 0x01
#define HAVE_SCTLR_EL1 0x02
#define HAVE_SCTLR_EL2 0x04
#define HAVE_SCTLR_EL3 0x08
#define HAVE_VMPIDR 0x10
#define HAVE_RVBAR_EL3 0x20
static unsigned int have_sys;
static __thread GByteArray *reg_buf;
/* The CPU this thread runs now: set at the start of every translation block. */
static __thread unsigned int current_vcpu;
/* How CPUs are told apart (see the top of the file). */
enum cpus_by { CPUS_AUTO, CPUS_BY_MPIDR, CPUS_BY_INDEX };
static enum cpus_by cpus_by;
static bool by_mpidr;
static int smp_vcpus = 1;

/* Everything below is guarded by `lock`. */
static GMutex lock;
static struct line *chunks[1u << (PA_BITS - CHUNK_SHIFT)];
static struct vcpu vcpus[MAX_VCPUS];
static uint32_t now = 1;              /* event time for the I side */
static uint32_t cacheable_epoch;      /* bumped whenever a CPU turns its D-cache on */
static unsigned int cacheable_cpus;
static uint64_t linear_base;
static uint64_t violations[N_VIOLATIONS];
static uint64_t ops[N_OPS];
static uint64_t loads, stores, cached_accesses, nc_accesses, fetch_checks, discarded;
static uint64_t unresolved_dc, unresolved_fetch, region_guesses, linear_fallbacks;
static uint64_t resets, cpu_slot_clashes;
static unsigned int details = 20, detailed;
static GString *report_details;
static FILE *out;
/* A generation is a kernel: it starts when CPU 0 turns its EL1 MMU on (at boot, after each
 * kexec). Violations are counted per generation, and those made with the MMU off apart. */
#define MAX_GENERATIONS 64
static unsigned int generation;
static uint64_t gen_violations[MAX_GENERATIONS], gen_mmu_off[MAX_GENERATIONS];
/* Host pointer - PA of RAM, per 1 GiB of host address space, from MMU-off fetches. */
static GHashTable *host_offsets;
#define AMBIGUOUS UINT64_MAX

/* SCTLR_ELx.M, .C and .I. */
#define SCTLR_M (1u << 0)
#define SCTLR_C (1u << 2)
#define SCTLR_I (1u << 12)
/* SCTLR_EL1 at reset on a Cortex-A72 (and what QEMU resets it to): a value no kernel here
 * writes, so seeing it again means the CPU was reset (PSCI CPU_ON after CPU_OFF). */
#define SCTLR_EL1_A72_RESET 0x00c50838u
/* MPIDR_EL1 affinity fields 0 and 1. */
#define MPIDR_AFF0(m) ((m) & 0xff)
#define MPIDR_AFF1(m) (((m) >> 8) & 0xff)
/* QEMU virt puts at most 16 CPUs in a cluster (GICv3; 8 with GICv2); the Pi 4 has 4. */
#define CPUS_PER_CLUSTER 16
/* PSTATE.EL in the gdb `cpsr` view. */
#define CPSR_EL_SHIFT 2

static struct line *line_at(uint64_t pa)
{
    if (pa >> PA_BITS) {
        return NULL;
    }
    struct line **c = &chunks[pa >> CHUNK_SHIFT];
    if (!*c) {
        *c = g_new0(struct line, LINES_PER_CHUNK);
    }
    return &(*c)[(pa >> LINE_SHIFT) & (LINES_PER_CHUNK - 1)];
}

static bool known_uncached(const struct line *l)
{
    return l->uncached_from == cacheable_epoch;
}

/* `pc`: the access's, or for a stale fetch the last store's to that line. */
static void violation(enum violation v, unsigned int vcpu, uint64_t pa, uint64_t va,
                      uint64_t pc)
{
    bool mmu_off = !vcpus[vcpu].mmu_on;
    unsigned int g = MIN(generation, MAX_GENERATIONS - 1);
    violations[v]++;
    gen_violations[g]++;
    gen_mmu_off[g] += mmu_off;
    if (detailed < details) {
        detailed++;
        g_string_append_printf(report_details,
                               "cache-model: %s: gen=%u cpu%u mmu=%s pa=%#" PRIx64
                               " va=%#" PRIx64 " pc=%#" PRIx64 "\n",
                               violation_names[v], generation, vcpu, mmu_off ? "off" : "on",
                               pa, va, pc);
    }
}

/* A cacheable load of a line another CPU wrote with its caches off, which this CPU had
 * invalidated before that write: a copy speculatively refilled in between would be stale.
 * That is the shape of every poll of a flag written with the MMU off (the pen's arrival
 * flags): invalidate, read, and again if the read was old. So such a load is held, and is a
 * violation only if the CPU does not invalidate that line again (a poll's next round)
 * before the run ends. */
struct held_read {
    enum violation kind;
    unsigned int gen, cpu;
    bool mmu_off;
    uint64_t pa, va, pc;
};
static GHashTable *held_reads; /* (line PA | CPU) -> struct held_read */
static uint64_t polls;

/* A load with caches off of a line another CPU wrote through its cache and has not cleaned
 * yet: memory still has the old value. That is a spin-table release seen from a waiting CPU
 * that an earlier event (another CPU's release) woke between the writer's store and its
 * clean: on silicon it reads the old value and waits again, and the clean and SEV that follow
 * release it. QEMU, coherent, hands it the new value at once. So such a load is held as well,
 * and is a violation only if no clean to the PoC of that line follows before the run ends. */
static GHashTable *early_reads; /* (line PA | CPU) -> struct held_read */
static uint64_t early;

static gpointer held_key(uint64_t pa, unsigned int cpu)
{
    return GSIZE_TO_POINTER((pa & ~((1ull << LINE_SHIFT) - 1)) | cpu);
}

static void hold(GHashTable *table, enum violation kind, unsigned int cpu, uint64_t pa,
                 uint64_t va, uint64_t pc)
{
    struct held_read *h = g_new(struct held_read, 1);
    *h = (struct held_read){kind, MIN(generation, MAX_GENERATIONS - 1), cpu,
                            !vcpus[cpu].mmu_on, pa, va, pc};
    g_hash_table_replace(table, held_key(pa, cpu), h);
}

/* The CPU invalidated the line again: a held read was a poll. */
static void release_read(unsigned int cpu, uint64_t pa)
{
    if (g_hash_table_remove(held_reads, held_key(pa, cpu))) {
        polls++;
    }
}

/* The line reached the PoC: every CPU's early read of it was a round of a wait. */
static void release_early_reads(uint64_t pa)
{
    for (unsigned int cpu = 0; cpu < MAX_VCPUS; cpu++) {
        if (g_hash_table_remove(early_reads, held_key(pa, cpu))) {
            early++;
        }
    }
}

/* At the end: held reads that nothing resolved are violations after all. */
static void settle_held_read(gpointer key, gpointer value, gpointer udata)
{
    struct held_read *h = value;
    violations[h->kind]++;
    gen_violations[h->gen]++;
    gen_mmu_off[h->gen] += h->mmu_off;
    if (detailed < details) {
        detailed++;
        g_string_append_printf(report_details,
                               "cache-model: %s: gen=%u cpu%u mmu=%s pa=%#" PRIx64
                               " va=%#" PRIx64 " pc=%#" PRIx64 " (%s)\n",
                               violation_names[h->kind], h->gen, h->cpu,
                               h->mmu_off ? "off" : "on", h->pa, h->va, h->pc,
                               h->kind == CACHED_AFTER_NC ? "a read never retried"
                                                          : "a line never cleaned");
    }
}

/* Byte offset of the lowest word in a word mask. */
static uint64_t first_word(uint16_t mask)
{
    return mask ? 4u * (unsigned int)__builtin_ctz(mask) : 0;
}

/* Memory (the PoU) now has the line's new code: which CPUs' I-caches may still hold the old?
 * Those that fetched from it since they last emptied their I-cache, and those that ran with
 * MMU and I-cache on since (speculation may fill any mapped line). A CPU that has only run
 * with its MMU off since a reset or an `ic iallu` holds only what it fetched. */
static void i_side_changed(struct line *l)
{
    l->flags = (l->flags & ~I_DIRTY) | I_STALE;
    l->itime = ++now;
    l->reported = 0;
    l->stale_for = 0;
    for (unsigned int i = 0; i < MAX_VCPUS; i++) {
        const struct vcpu *c = &vcpus[i];
        if (c->seen && (c->spec || l->fetched_in[i] == c->iepoch)) {
            l->stale_for |= 1u << i;
        }
    }
}

/* A CPU's I-cache is empty (ic iallu, a broadcast invalidate, a reset). */
static void icache_emptied(struct vcpu *c)
{
    c->iallu_time = ++now;
    c->iepoch = c->iepoch == UINT16_MAX ? 1 : c->iepoch + 1;
    c->spec = c->mmu_on && c->icache_on;
}

/* The line was cleaned to the point of unification (the I side may now be refilled). */
static void cleaned_for_i(struct line *l)
{
    if (l->flags & I_DIRTY) {
        i_side_changed(l);
    }
}

static void invalidated(struct line *l)
{
    l->flags &= ~(DIRTY | NC_WRITTEN);
    l->uncached_from = cacheable_cpus ? UNKNOWN : cacheable_epoch;
}

/* The 4-byte words of a line that [lo, hi) covers (offsets within the line). */
static uint16_t words(uint64_t lo, uint64_t hi)
{
    uint16_t m = 0;
    for (uint64_t w = lo >> 2; w <= (hi - 1) >> 2 && w < 16; w++) {
        m |= 1u << w;
    }
    return m;
}

/* An access by `vcpu` to bytes [lo, hi) of the line at `pa`. */
static void access_line(unsigned int vcpu, struct line *l, bool store, uint64_t pa,
                        uint64_t lo, uint64_t hi, uint64_t va, uint64_t pc)
{
    struct vcpu *c = &vcpus[vcpu];
    if (store) {
        l->writer = pc;
        l->reported = 0;
        /* Code made coherent for this CPU earlier is no longer of interest. */
        if ((l->flags & I_STALE) && (int32_t)(c->iallu_time - l->itime) > 0) {
            l->flags &= ~I_STALE;
            l->iwords = 0;
        }
        l->iwords |= words(lo, hi);
    }
    if (c->cacheable) {
        if (l->flags & NC_WRITTEN) {
            if (store) {
                violation(CACHED_AFTER_NC, vcpu, pa + lo, va, pc);
            } else {
                hold(held_reads, CACHED_AFTER_NC, vcpu, pa + lo, va, pc);
            }
            l->flags &= ~NC_WRITTEN;
        }
        l->uncached_from = UNKNOWN;
        if (store) {
            l->flags = (l->flags & ~I_STALE) | DIRTY | I_DIRTY;
        }
    } else {
        if ((l->flags & DIRTY) && store) {
            violation(NC_STORE_DIRTY, vcpu, pa + lo, va, pc);
            l->flags &= ~DIRTY;
        } else if (l->flags & DIRTY) {
            /* The line stays dirty: its clean, if one comes, decides. */
            hold(early_reads, NC_LOAD_DIRTY, vcpu, pa + lo, va, pc);
        }
        if (store) {
            if (!known_uncached(l)) {
                l->flags |= NC_WRITTEN;
            }
            /* Memory is now right; the I-cache may hold the old code. */
            i_side_changed(l);
        }
    }
}

/* An access to [pa, pa + size), which may cross lines. */
static void access_range(unsigned int vcpu, bool store, uint64_t pa, uint64_t size,
                         uint64_t va, uint64_t pc)
{
    const uint64_t line_size = 1ull << LINE_SHIFT;
    for (uint64_t a = pa & ~(line_size - 1); a < pa + size; a += line_size) {
        struct line *l = line_at(a);
        if (l) {
            uint64_t lo = MAX(pa, a) - a, hi = MIN(pa + size, a + line_size) - a;
            access_line(vcpu, l, store, a, lo, hi, va, pc);
        }
    }
}

/* CPU `cpu` used the translation va -> pa (at `pc`). A different one that it used for the same
 * page before, with no TLB invalidation reaching it since, may still be in its TLB. Only
 * translations QEMU gave a data access (`data`) are compared: an instruction's PA is
 * inferred through QEMU's host pointer, which a firmware's ROM can mislead. */
#define PAGE_FROM_DATA 1
static void learn_page(unsigned int cpu, uint64_t va, uint64_t pa, uint64_t pc, bool data)
{
    struct vcpu *c = &vcpus[cpu];
    uint64_t vp = va >> PAGE_SHIFT, pp = pa >> PAGE_SHIFT;
    if (vp == c->last_va_page && pp == c->last_pa_page) {
        return;
    }
    uint64_t old = GPOINTER_TO_SIZE(g_hash_table_lookup(c->pages, GSIZE_TO_POINTER(vp)));
    if (data && (old & PAGE_FROM_DATA) && (old >> 1) - 1 != pp) {
        violation(TLB_STALE, cpu, pa, va, pc);
    }
    c->last_va_page = vp;
    c->last_pa_page = pp;
    g_hash_table_insert(c->pages, GSIZE_TO_POINTER(vp),
                        GSIZE_TO_POINTER(((pp + 1) << 1) | (data ? PAGE_FROM_DATA : 0)));
    g_hash_table_insert(c->regions, GSIZE_TO_POINTER(va >> REGION_SHIFT),
                        GSIZE_TO_POINTER(va - pa));
    if (va >= LINEAR_START && va < LINEAR_END) {
        c->linear_offset = va - pa;
    }
}

/* Which learned translations to drop. */
enum forget { PAGES, LOWER_HALF, ALL };

static gboolean in_half(gpointer key, gpointer value, gpointer shift_and_half)
{
    uint64_t k = GPOINTER_TO_SIZE(key);
    unsigned int shift = GPOINTER_TO_UINT(shift_and_half) >> 1;
    bool upper = GPOINTER_TO_UINT(shift_and_half) & 1;
    return ((k << shift) >> 63) == upper;
}

/* After a TLBI pages may have moved (regions keep their offsets); a TTBR0 write replaces the
 * lower half, a new TTBR1 table the upper half, an MMU switch or a reset everything.
 * `cpu`: the CPU whose TLB it is, or ALL_CPUS (a broadcast TLBI). */
#define ALL_CPUS UINT_MAX
static void forget_pages(unsigned int cpu, enum forget what)
{
    for (unsigned int i = 0; i < MAX_VCPUS; i++) {
        struct vcpu *c = &vcpus[i];
        if (cpu != ALL_CPUS && cpu != i) {
            continue;
        }
        c->last_va_page = c->last_pa_page = UINT64_MAX;
        switch (what) {
        case PAGES:
        case ALL:
            g_hash_table_remove_all(c->pages);
            if (what == ALL) {
                g_hash_table_remove_all(c->regions);
                c->linear_offset = 0;
            }
            break;
        case LOWER_HALF:
            g_hash_table_foreach_remove(c->pages, in_half, GUINT_TO_POINTER(PAGE_SHIFT << 1));
            g_hash_table_foreach_remove(c->regions, in_half,
                                        GUINT_TO_POINTER(REGION_SHIFT << 1));
            break;
        }
    }
}

/* The CPU a callback runs for: the one the last block start found running on this thread
 * (by VMPIDR_EL2), or QEMU's index where that is right (`cpus=index`, one vCPU). */
static unsigned int cpu_of(unsigned int vcpu_index)
{
    if (by_mpidr) {
        return current_vcpu;
    }
    return vcpu_index < MAX_VCPUS ? vcpu_index : MAX_VCPUS - 1;
}

static void mem_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t va,
                       void *udata)
{
    struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, va);
    if (!hw || qemu_plugin_hwaddr_is_io(hw)) {
        return;
    }
    uint64_t pa = qemu_plugin_hwaddr_phys_addr(hw);
    uint64_t size = 1ull << qemu_plugin_mem_size_shift(info);
    bool store = qemu_plugin_mem_is_store(info);
    unsigned int cpu = cpu_of(vcpu);
    uint64_t pc = (uint64_t)(uintptr_t)udata;
    g_mutex_lock(&lock);
    struct vcpu *c = &vcpus[cpu];
    store ? stores++ : loads++;
    c->cacheable ? cached_accesses++ : nc_accesses++;
    if (c->mmu_on) {
        learn_page(cpu, va, pa, pc, true);
    }
    access_range(cpu, store, pa, size, va, pc);
    g_mutex_unlock(&lock);
}

/* Reads a 64-bit register of the running vCPU (from callbacks registered with R_REGS, or
 * without a flags argument). */
static uint64_t read_reg(struct qemu_plugin_register *r)
{
    uint64_t v = 0;
    if (!reg_buf) {
        reg_buf = g_byte_array_new();
    }
    g_byte_array_set_size(reg_buf, 0);
    int n = qemu_plugin_read_register(r, reg_buf);
    if (n > 0) {
        memcpy(&v, reg_buf->data, MIN((size_t)n, sizeof(v)));
    }
    return v;
}

/* The running vCPU's translation regime, as its registers say now. */
struct mode {
    unsigned int el;
    bool mmu;       /* the current EL's SCTLR.M */
    bool cacheable; /* M and C: data accesses are cacheable */
    bool icache;    /* SCTLR.I */
    uint64_t sctlr_el1;
};

/* Reads the running vCPU's mode (from callbacks registered with R_REGS, or translation). */
static struct mode read_mode(void)
{
    struct mode m = {0};
    m.el = (read_reg(reg_cpsr) >> CPSR_EL_SHIFT) & 3;
    m.sctlr_el1 = read_reg(reg_sctlr_el1);
    uint64_t sctlr = 0;
    if (m.el <= 1) {
        sctlr = m.sctlr_el1;
    } else if (m.el == 2 && (have_sys & HAVE_SCTLR_EL2)) {
        sctlr = read_reg(reg_sctlr_el2);
    } else if (m.el == 3 && (have_sys & HAVE_SCTLR_EL3)) {
        /* Firmware at EL3 (TF-A's BL31) maps what it shares between CPUs and with its
         * MMU-off paths non-cacheable, through a MAIR this model cannot see: its data
         * accesses count as non-cacheable with an identity map (only its I-cache is on). */
        m.icache = read_reg(reg_sctlr_el3) & SCTLR_I;
        return m;
    }
    m.mmu = sctlr & SCTLR_M;
    m.cacheable = m.mmu && (sctlr & SCTLR_C);
    m.icache = sctlr & SCTLR_I;
    return m;
}

/* The running CPU's slot: from VMPIDR_EL2's affinity, or QEMU's index (see cpu_of). */
static unsigned int running_cpu(unsigned int vcpu_index)
{
    if (!by_mpidr) {
        return vcpu_index < MAX_VCPUS ? vcpu_index : MAX_VCPUS - 1;
    }
    uint64_t mpidr = read_reg(reg_vmpidr);
    uint64_t slot = MPIDR_AFF1(mpidr) * CPUS_PER_CLUSTER + MPIDR_AFF0(mpidr);
    if (slot >= MAX_VCPUS) {
        __atomic_fetch_add(&cpu_slot_clashes, 1, __ATOMIC_RELAXED);
        slot = MAX_VCPUS - 1;
    }
    return (unsigned int)slot;
}

/* EL0 and EL1 share a translation regime; EL2 and EL3 have their own. */
static unsigned int regime(unsigned int el)
{
    return el <= 1 ? 1 : el;
}

/* A translation block starts (at `udata`, its PC): which CPU runs it, was that CPU reset,
 * and are its MMU, D-cache and I-cache on? */
static void tb_start(unsigned int vcpu, void *udata)
{
    unsigned int cpu = running_cpu(vcpu);
    current_vcpu = cpu;
    struct vcpu *c = &vcpus[cpu];
    struct mode m = read_mode();
    uint64_t pc = (uint64_t)(uintptr_t)udata;
    bool reset = (m.sctlr_el1 == SCTLR_EL1_A72_RESET && c->sctlr_el1 != SCTLR_EL1_A72_RESET) ||
                 (m.el == 3 && (have_sys & HAVE_RVBAR_EL3) && pc == read_reg(reg_rvbar_el3));
    if (!reset && c->seen && m.mmu == c->mmu_on && m.cacheable == c->cacheable &&
        m.icache == c->icache_on && m.el == c->el && m.sctlr_el1 == c->sctlr_el1) {
        return;
    }
    g_mutex_lock(&lock);
    if (reset) {
        /* Caches and TLBs come out of reset empty (the A72 invalidates them itself). */
        resets++;
        c->mmu_on = c->icache_on = false;
        icache_emptied(c);
        forget_pages(cpu, ALL);
    }
    /* EL2 (an HVC into a stub, say) has its own MMU: only EL1's starts a generation. */
    if (m.el <= 1) {
        if (cpu == 0 && m.mmu && !c->el1_mmu_on) {
            generation++;
        }
        c->el1_mmu_on = m.mmu;
    }
    if (m.mmu != c->mmu_on || regime(m.el) != regime(c->el)) {
        forget_pages(cpu, ALL);
    }
    if (m.cacheable && !c->cacheable) {
        cacheable_cpus++;
        cacheable_epoch++;
    } else if (!m.cacheable && c->cacheable) {
        cacheable_cpus--;
    }
    c->seen = true;
    c->spec |= m.mmu && m.icache;
    c->mmu_on = m.mmu;
    c->cacheable = m.cacheable;
    c->icache_on = m.icache;
    c->el = m.el;
    c->sctlr_el1 = m.sctlr_el1;
    g_mutex_unlock(&lock);
}

/* Where a translation block's instructions come from: lines, and the words fetched in each.
 * (Kept for the block's lifetime: the plugin API does not say when QEMU drops a block.) */
struct tb_line {
    uint64_t pa;
    uint16_t words;
};
struct tb_lines {
    unsigned int n;
    uint64_t pc;
    struct tb_line line[];
};

/* A block's instructions are fetched: through this CPU's I-cache (which must hold nothing
 * older than the code), and with SCTLR.I off from memory too (which must not be behind a
 * dirty D-cache line). */
static void tb_fetch(unsigned int vcpu, void *udata)
{
    struct tb_lines *t = udata;
    unsigned int cpu = cpu_of(vcpu);
    g_mutex_lock(&lock);
    struct vcpu *c = &vcpus[cpu];
    for (unsigned int i = 0; i < t->n; i++) {
        struct line *l = line_at(t->line[i].pa);
        fetch_checks++;
        if (!l) {
            continue;
        }
        uint16_t code = l->iwords & t->line[i].words;
        bool stale = (l->flags & I_DIRTY) ||
                     ((l->flags & I_STALE) && (l->stale_for & (1u << cpu)) &&
                      (int32_t)(c->iallu_time - l->itime) <= 0);
        l->fetched_in[cpu] = c->iepoch;
        if (stale && code && !(l->reported & (1u << cpu))) {
            violation(FETCH_STALE, cpu, t->line[i].pa | first_word(code), t->pc, l->writer);
            l->reported |= 1u << cpu;
        }
        if (!c->icache_on && (l->flags & DIRTY) && code) {
            violation(FETCH_NC_DIRTY, cpu, t->line[i].pa | first_word(code), t->pc, l->writer);
            l->flags &= ~DIRTY;
        }
    }
    g_mutex_unlock(&lock);
}

/* A cache or TLB maintenance instruction, decoded at translation. */
struct maint {
    enum op op;
    unsigned int rt;
    uint64_t pc;
};

/* VA -> PA as the vCPU's MMU would: identity with it off; else a page seen accessed since the
 * last TLBI; else the offset of the latest access in the same region (the linear map and the
 * kernel image are each mapped at one offset); else the kernel linear map (`linear=`). */
static bool translate(struct vcpu *c, bool mmu_on, uint64_t va, uint64_t *pa)
{
    if (!mmu_on) {
        *pa = va;
        return true;
    }
    gpointer p = g_hash_table_lookup(c->pages, GSIZE_TO_POINTER(va >> PAGE_SHIFT));
    if (p) {
        *pa = (((GPOINTER_TO_SIZE(p) >> 1) - 1) << PAGE_SHIFT) | (va & ((1ull << PAGE_SHIFT) - 1));
        return true;
    }
    if (g_hash_table_lookup_extended(c->regions, GSIZE_TO_POINTER(va >> REGION_SHIFT), NULL, &p)) {
        region_guesses++;
        *pa = va - GPOINTER_TO_SIZE(p);
        return true;
    }
    if (va >= LINEAR_START && va < LINEAR_END && (c->linear_offset || linear_base)) {
        linear_fallbacks++;
        *pa = va - (c->linear_offset ? c->linear_offset : linear_base);
        return true;
    }
    return false;
}

static void maintenance(unsigned int vcpu, void *udata)
{
    struct maint *m = udata;
    unsigned int cpu = cpu_of(vcpu);
    struct vcpu *c = &vcpus[cpu];
    uint64_t va = m->rt < 31 && (have_x >> m->rt) & 1 ? read_reg(reg_x[m->rt]) : 0;
    g_mutex_lock(&lock);
    ops[m->op]++;
    switch (m->op) {
    case IC_IALLU:
        /* This CPU's I-cache only. */
        icache_emptied(c);
        break;
    case IC_IALLUIS:
        for (int i = 0; i < MAX_VCPUS; i++) {
            icache_emptied(&vcpus[i]);
        }
        break;
    case TLBI:
        forget_pages(cpu, PAGES);
        break;
    case TLBI_IS:
        forget_pages(ALL_CPUS, PAGES);
        break;
    case MSR_TTBR0:
        forget_pages(cpu, LOWER_HALF);
        break;
    case MSR_TTBR1:
        /* A new kernel table (Linux moving to swapper_pg_dir, the relocation moving to the
         * linear-map copy) keeps the image and linear-map offsets: only pages are dropped. */
        forget_pages(cpu, PAGES);
        break;
    case DC_SETWAY:
        break;
    default: {
        uint64_t pa;
        if (!translate(c, c->mmu_on, va, &pa)) {
            unresolved_dc++;
            break;
        }
        struct line *l = line_at(pa);
        if (!l) {
            break;
        }
        switch (m->op) {
        case DC_CIVAC:
            cleaned_for_i(l);
            invalidated(l);
            release_read(cpu, pa);
            release_early_reads(pa);
            break;
        case DC_CVAC:
            cleaned_for_i(l);
            l->flags &= ~DIRTY;
            release_early_reads(pa);
            break;
        case DC_CVAU:
            cleaned_for_i(l);
            break;
        case DC_IVAC:
            release_read(cpu, pa);
            if (l->flags & DIRTY) {
                discarded++;
            }
            if (l->flags & I_DIRTY) {
                i_side_changed(l);
            }
            invalidated(l);
            break;
        case DC_ZVA:
            /* Zeroes a 64-byte block (DCZID_EL0 on the A72) through the cache. */
            access_range(cpu, true, pa & ~63ull, 64, va, m->pc);
            break;
        case IC_IVAU:
            /* Every CPU's I-cache (to the inner shareable domain). */
            if (!(l->flags & I_DIRTY)) {
                l->flags &= ~I_STALE;
                l->iwords = 0;
                l->reported = 0;
            }
            break;
        default:
            break;
        }
    }
    }
    g_mutex_unlock(&lock);
}

/* Recognises cache and TLB maintenance (A64 system instructions; Rt in bits 4:0). */
static bool decode(uint32_t insn, enum op *op)
{
    static const struct { uint32_t enc; enum op op; } table[] = {
        {0xd50b7e20, DC_CIVAC}, {0xd50b7a20, DC_CVAC}, {0xd50b7b20, DC_CVAU},
        {0xd50b7c20, DC_CVAC} /* cvap */, {0xd50b7d20, DC_CVAC} /* cvadp */,
        {0xd5087620, DC_IVAC}, {0xd50b7420, DC_ZVA}, {0xd50b7520, IC_IVAU},
        {0xd5087640, DC_SETWAY} /* isw */, {0xd5087a40, DC_SETWAY} /* csw */,
        {0xd5087e40, DC_SETWAY} /* cisw */,
        {0xd5182000, MSR_TTBR0} /* ttbr0_el1 */, {0xd5182020, MSR_TTBR1} /* ttbr1_el1 */,
        {0xd51c2000, MSR_TTBR0} /* ttbr0_el2 */,
    };
    if (insn == 0xd508751f) {
        *op = IC_IALLU;
        return true;
    }
    if (insn == 0xd508711f) {
        *op = IC_IALLUIS;
        return true;
    }
    /* SYS #op1, C8, Cm, #op2, Xt: TLB invalidation. CRm 7 (e.g. VMALLE1), 4 (IPAS2E1) and 6
     * (the range forms) reach only this CPU; 3 (IS), 1 and 5 (OS), 0 and 2 broadcast. */
    if ((insn & 0xfff8f000) == 0xd5088000) {
        unsigned int crm = (insn >> 8) & 0xf;
        *op = crm == 7 || crm == 4 || crm == 6 ? TLBI : TLBI_IS;
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        if ((insn & ~0x1fu) == table[i].enc) {
            *op = table[i].op;
            return true;
        }
    }
    return false;
}

/* PA of an instruction: VA with the MMU off, else its host pointer less RAM's offset
 * (calibrated by MMU-off fetches in the same GiB of host memory), else as a data access. */
static bool insn_pa(unsigned int cpu, bool mmu_on, struct qemu_plugin_insn *insn, uint64_t *pa)
{
    struct vcpu *c = &vcpus[cpu];
    uint64_t va = qemu_plugin_insn_vaddr(insn);
    uint64_t host = (uint64_t)(uintptr_t)qemu_plugin_insn_haddr(insn);
    gpointer key = GSIZE_TO_POINTER(host >> 30);
    gpointer off;
    bool known = host && g_hash_table_lookup_extended(host_offsets, key, NULL, &off);
    if (!mmu_on) {
        *pa = va;
        /* Two memory regions (a boot ROM and RAM, say) in one GiB of host memory: no
         * single offset there. */
        if (host && !known) {
            g_hash_table_insert(host_offsets, key, GSIZE_TO_POINTER(host - va));
        } else if (known && GPOINTER_TO_SIZE(off) != host - va) {
            g_hash_table_insert(host_offsets, key, GSIZE_TO_POINTER(AMBIGUOUS));
        }
        return true;
    }
    if (known && GPOINTER_TO_SIZE(off) != AMBIGUOUS) {
        *pa = host - GPOINTER_TO_SIZE(off);
        learn_page(cpu, va, *pa, va, false);
        return true;
    }
    return translate(c, mmu_on, va, pa);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct tb_lines *lines = g_malloc0(sizeof(*lines) + n * sizeof(lines->line[0]));
    lines->pc = qemu_plugin_tb_vaddr(tb);
    /* Translation runs on the vCPU that will run the block, in the mode it will run in. */
    bool mmu_on = read_mode().mmu;
    unsigned int cpu = by_mpidr ? running_cpu(0) : current_vcpu;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_start, QEMU_PLUGIN_CB_R_REGS,
                                         (void *)(uintptr_t)lines->pc);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        uint32_t word = 0;
        enum op op;
        if (qemu_plugin_insn_size(insn) == 4) {
            qemu_plugin_insn_data(insn, &word, sizeof(word));
        }
        qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_RW, (void *)(uintptr_t)pc);
        if (decode(word, &op)) {
            struct maint *m = g_new0(struct maint, 1);
            m->op = op;
            m->rt = word & 0x1f;
            m->pc = pc;
            qemu_plugin_register_vcpu_insn_exec_cb(insn, maintenance, QEMU_PLUGIN_CB_R_REGS, m);
        }
        uint64_t pa;
        g_mutex_lock(&lock);
        bool ok = insn_pa(cpu, mmu_on, insn, &pa);
        g_mutex_unlock(&lock);
        if (!ok) {
            unresolved_fetch++;
            continue;
        }
        uint64_t line = pa & ~((1ull << LINE_SHIFT) - 1);
        unsigned int k = 0;
        while (k < lines->n && lines->line[k].pa != line) {
            k++;
        }
        if (k == lines->n) {
            lines->line[lines->n++].pa = line;
        }
        lines->line[k].words |= words(pa - line, pa - line + 4);
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_fetch, QEMU_PLUGIN_CB_NO_REGS, lines);
}

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    if (have_regs) {
        return;
    }
    have_regs = true;
    GArray *regs = qemu_plugin_get_registers();
    for (guint i = 0; i < regs->len; i++) {
        qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);
        char *end;
        long x = d->name[0] == 'x' ? strtol(d->name + 1, &end, 10) : -1;
        if (x >= 0 && x < 31 && end != d->name + 1 && *end == 0) {
            reg_x[x] = d->handle;
            have_x |= 1u << x;
        } else if (!strcmp(d->name, "cpsr")) {
            reg_cpsr = d->handle;
            have_sys |= HAVE_CPSR;
        } else if (!strcmp(d->name, "SCTLR")) {
            reg_sctlr_el1 = d->handle; /* QEMU's name for SCTLR_EL1 */
            have_sys |= HAVE_SCTLR_EL1;
        } else if (!strcmp(d->name, "SCTLR_EL2")) {
            reg_sctlr_el2 = d->handle;
            have_sys |= HAVE_SCTLR_EL2;
        } else if (!strcmp(d->name, "SCTLR_EL3")) {
            reg_sctlr_el3 = d->handle;
            have_sys |= HAVE_SCTLR_EL3;
        } else if (!strcmp(d->name, "VMPIDR_EL2") || !strcmp(d->name, "VMPIDR")) {
            /* QEMU 10 names it either way (virt: VMPIDR, raspi4b: VMPIDR_EL2). */
            reg_vmpidr = d->handle;
            have_sys |= HAVE_VMPIDR;
        } else if (!strcmp(d->name, "RVBAR_EL3")) {
            reg_rvbar_el3 = d->handle;
            have_sys |= HAVE_RVBAR_EL3;
        }
    }
    g_array_free(regs, true);
    /* SCTLR_EL2 and VMPIDR_EL2 exist only with EL2 (virtualization=on), *_EL3 with EL3. */
    unsigned int needed = HAVE_CPSR | HAVE_SCTLR_EL1;
    if ((have_sys & needed) != needed || have_x != 0x7fffffffu) {
        fprintf(stderr, "cache-model: this QEMU does not offer x0-x30, cpsr and SCTLR "
                        "to plugins (found %#x/%#x): cannot model\n", have_sys, have_x);
        exit(1);
    }
    if (cpus_by != CPUS_BY_INDEX && (have_sys & HAVE_VMPIDR)) {
        by_mpidr = true;
    } else if (cpus_by == CPUS_BY_MPIDR || (cpus_by == CPUS_AUTO && smp_vcpus > 1)) {
        fprintf(stderr, "cache-model: %d vCPUs without VMPIDR_EL2 (no EL2): cannot tell "
                        "which CPU runs under -accel tcg,thread=single; run QEMU with "
                        "-accel tcg,thread=multi and give the plugin cpus=index\n",
                smp_vcpus);
        exit(1);
    }
}

static void report(qemu_plugin_id_t id, void *udata)
{
    GString *s = g_string_new("");
    uint64_t total = 0, maint = 0;
    for (int i = 0; i < N_VIOLATIONS; i++) {
        total += violations[i];
    }
    for (int i = 0; i < N_OPS; i++) {
        maint += ops[i];
    }
    g_hash_table_foreach(held_reads, settle_held_read, NULL);
    g_hash_table_foreach(early_reads, settle_held_read, NULL);
    g_string_append(s, report_details->str);
    g_string_append_printf(s,
                           "cache-model: loads=%" PRIu64 " stores=%" PRIu64
                           " cacheable=%" PRIu64 " non_cacheable=%" PRIu64
                           " fetch_checks=%" PRIu64 "\n",
                           loads, stores, cached_accesses, nc_accesses, fetch_checks);
    g_string_append(s, "cache-model:");
    for (int i = 0; i < N_OPS; i++) {
        g_string_append_printf(s, " %s=%" PRIu64, op_names[i], ops[i]);
    }
    g_string_append_printf(s, " maintenance=%" PRIu64 "\n", maint);
    unsigned int seen = 0;
    for (int i = 0; i < MAX_VCPUS; i++) {
        seen += vcpus[i].seen;
    }
    g_string_append_printf(s,
                           "cache-model: cpus=%u by_mpidr=%d resets=%" PRIu64
                           " cpu_slot_clashes=%" PRIu64 " polls=%" PRIu64 " early_reads=%" PRIu64 "\n",
                           seen, by_mpidr, resets, cpu_slot_clashes, polls, early);
    g_string_append_printf(s,
                           "cache-model: unresolved_dc=%" PRIu64 " region_guesses=%" PRIu64
                           " linear_fallbacks=%" PRIu64 " unresolved_fetch=%" PRIu64
                           " discarded_dirty=%" PRIu64 "\n",
                           unresolved_dc, region_guesses, linear_fallbacks, unresolved_fetch,
                           discarded);
    g_string_append(s, "cache-model:");
    for (int i = 0; i < N_VIOLATIONS; i++) {
        g_string_append_printf(s, " %s=%" PRIu64, violation_names[i], violations[i]);
    }
    g_string_append(s, "\n");
    for (unsigned int g = 0; g <= MIN(generation, MAX_GENERATIONS - 1); g++) {
        g_string_append_printf(s,
                               "cache-model: gen=%u violations=%" PRIu64 " mmu_off=%" PRIu64
                               "\n",
                               g, gen_violations[g], gen_mmu_off[g]);
    }
    g_string_append_printf(s, "cache-model: violations=%" PRIu64 "\n", total);
    if (out) {
        fputs(s->str, out);
        fclose(out);
    } else {
        qemu_plugin_outs(s->str);
    }
    g_string_free(s, true);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    if (!info->system_emulation || strcmp(info->target_name, "aarch64")) {
        fprintf(stderr, "cache-model: needs qemu-system-aarch64\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        if (g_str_has_prefix(argv[i], "out=")) {
            out = fopen(argv[i] + 4, "w");
            if (!out) {
                fprintf(stderr, "cache-model: cannot write %s\n", argv[i] + 4);
                return -1;
            }
        } else if (g_str_has_prefix(argv[i], "linear=")) {
            linear_base = g_ascii_strtoull(argv[i] + 7, NULL, 16);
        } else if (g_str_has_prefix(argv[i], "details=")) {
            details = (unsigned int)g_ascii_strtoull(argv[i] + 8, NULL, 10);
        } else if (!strcmp(argv[i], "cpus=mpidr")) {
            cpus_by = CPUS_BY_MPIDR;
        } else if (!strcmp(argv[i], "cpus=index")) {
            cpus_by = CPUS_BY_INDEX;
        } else {
            fprintf(stderr, "cache-model: unknown argument %s (out=FILE, linear=HEX, details=N, "
                            "cpus=mpidr|index)\n",
                    argv[i]);
            return -1;
        }
    }
    smp_vcpus = info->system.smp_vcpus;
    report_details = g_string_new("");
    /* Every slot: CPUs are placed by MPIDR affinity, not in the order QEMU creates them. */
    for (int i = 0; i < MAX_VCPUS; i++) {
        vcpus[i].pages = g_hash_table_new(g_direct_hash, g_direct_equal);
        vcpus[i].regions = g_hash_table_new(g_direct_hash, g_direct_equal);
        vcpus[i].last_va_page = vcpus[i].last_pa_page = UINT64_MAX;
        vcpus[i].iepoch = 1;
    }
    host_offsets = g_hash_table_new(g_direct_hash, g_direct_equal);
    held_reads = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    early_reads = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
