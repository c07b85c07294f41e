/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * console-stamp: a QEMU TCG plugin that stamps every console line with the number of guest
 * instructions executed before its first byte was written. Under
 * `-icount shift=0,sleep=off` one instruction is one nanosecond of guest time, so two lines'
 * stamps give the guest time between them, reproducible to the instruction and free of host
 * noise, whichever kernel printed them (Linux's earlycon and this kernel write the same
 * PL011 data register). Used by scripts/bench.sh.
 *
 *   -plugin console-stamp.so,uart=0x9000000[,entry=ADDR,after=TEXT] -d plugin -D stamps.log
 *
 * Output, one line per console line: "<instructions> <text>". With entry= and after=, also
 * "<instructions> @entry" the first time code at virtual address ADDR runs after a console
 * line containing TEXT (the next kernel's entry point, reached with the MMU off, so that
 * virtual = physical): the cost of a kexec without the next kernel's own boot. Instructions
 * are counted per
 * translation block on entry (a block left early by an exception still counts whole: an
 * error of a few instructions). Time the guest spends idle in wfi (virtual time warped
 * forward by sleep=off) is not counted; scripts/bench.sh measures with one vCPU that does not
 * idle in the windows it measures.
 */
#include "../cache-model/qemu-plugin-api.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 4;

/* From QEMU's include/qemu/qemu-plugin.h (API version 4). */
struct qemu_plugin_scoreboard;
typedef struct {
    struct qemu_plugin_scoreboard *score;
    size_t offset;
} qemu_plugin_u64;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64, QEMU_PLUGIN_INLINE_STORE_U64 };
enum qemu_plugin_mem_value_type {
    QEMU_PLUGIN_MEM_VALUE_U8,
    QEMU_PLUGIN_MEM_VALUE_U16,
    QEMU_PLUGIN_MEM_VALUE_U32,
    QEMU_PLUGIN_MEM_VALUE_U64,
    QEMU_PLUGIN_MEM_VALUE_U128,
};
typedef struct {
    enum qemu_plugin_mem_value_type type;
    union {
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        struct {
            uint64_t low;
            uint64_t high;
        } u128;
    } data;
} qemu_plugin_mem_value;
struct qemu_plugin_scoreboard *qemu_plugin_scoreboard_new(size_t element_size);
void qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(struct qemu_plugin_tb *tb,
                                                       enum qemu_plugin_op op,
                                                       qemu_plugin_u64 entry, uint64_t imm);
uint64_t qemu_plugin_u64_sum(qemu_plugin_u64 entry);
qemu_plugin_mem_value qemu_plugin_mem_get_value(qemu_plugin_meminfo_t info);

static qemu_plugin_u64 insns;
static uint64_t uart_pa = 0x9000000;
static char line[512];
static size_t line_len;
static uint64_t line_start;
static GMutex lock;
static uint64_t entry_va = UINT64_MAX;
static const char *after_text;
static bool armed, entered;

static void flush_line(void)
{
    char out[600];
    snprintf(out, sizeof(out), "%" PRIu64 " %.*s\n", line_start, (int)line_len, line);
    qemu_plugin_outs(out);
    if (after_text && !armed && strstr(out, after_text)) {
        armed = true;
    }
    line_len = 0;
}

static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
    if (!hw || !qemu_plugin_hwaddr_is_io(hw) || qemu_plugin_hwaddr_phys_addr(hw) != uart_pa) {
        return;
    }
    qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);
    char c = (char)v.data.u8;
    g_mutex_lock(&lock);
    if (line_len == 0) {
        line_start = qemu_plugin_u64_sum(insns);
    }
    if (c == '\n') {
        flush_line();
    } else if (c != '\r') {
        line[line_len++] = c;
        if (line_len == sizeof(line)) {
            flush_line();
        }
    }
    g_mutex_unlock(&lock);
}

static void on_entry(unsigned int vcpu, void *udata)
{
    g_mutex_lock(&lock);
    if (armed && !entered) {
        char out[64];
        entered = true;
        snprintf(out, sizeof(out), "%" PRIu64 " @entry\n", qemu_plugin_u64_sum(insns));
        qemu_plugin_outs(out);
    }
    g_mutex_unlock(&lock);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (qemu_plugin_tb_vaddr(tb) == entry_va) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_entry, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64, insns, n);
    for (size_t i = 0; i < n; i++) {
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), on_store,
                                         QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_W, NULL);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    g_mutex_lock(&lock);
    if (line_len) {
        flush_line();
    }
    g_mutex_unlock(&lock);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "uart=", 5) == 0) {
            uart_pa = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "entry=", 6) == 0) {
            entry_va = strtoull(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "after=", 6) == 0) {
            after_text = argv[i] + 6;
        } else {
            fprintf(stderr, "console-stamp: unknown argument %s (expected uart=, entry=, after=)\n",
                    argv[i]);
            return -1;
        }
    }
    insns = (qemu_plugin_u64){ qemu_plugin_scoreboard_new(sizeof(uint64_t)), 0 };
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
