// SPDX-License-Identifier: GPL-2.0
/*
 * vmsim test enclave host: loading the enclave, as the Linux SGX kselftest's
 * tools/testing/selftests/sgx/load.c does (spec/sgx-driver.md §5.a):
 *
 *   encl_load()   open /dev/sgx_enclave, try a PROT_READ and a PROT_EXEC mapping of
 *                 it (a noexec /dev refuses the second), map the ELF file and read
 *                 its PT_LOADs as segments (the first, exactly RW, is TCS pages),
 *                 append an unmeasured heap; ELRANGE = the smallest power of two
 *                 covering them (encl_load(), encl_map_bin())
 *   encl_sign()   the SIGSTRUCT for this heap size from a file the signer wrote (where
 *                 load.c computes it itself, sigstruct.c encl_measure())
 *   encl_build()  reserve a size-aligned ELRANGE (PROT_NONE, anonymous), CREATE,
 *                 ADD_PAGES per segment, INIT (encl_map_area(), encl_build())
 *   encl_map()    map every segment from the device with its permissions, what
 *                 "an enclave consumer only must do" (main.c setup_test_encl())
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"

#define PAGE_MASK		(~(uint64_t)(PAGE_SIZE - 1))
#define PAGE_ROUND_UP(x)	(((x) + PAGE_SIZE - 1) & PAGE_MASK)
#define DEVICE			"/dev/sgx_enclave"

/* Can the device be mapped readable, and executable (not on a noexec /dev)? */
static bool device_probe(int fd)
{
	void *addr = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);

	if (addr == MAP_FAILED) {
		diag("mmap(PROT_READ) of " DEVICE ": %s", strerror(errno));
		return false;
	}
	munmap(addr, PAGE_SIZE);
	addr = mmap(NULL, PAGE_SIZE, PROT_EXEC, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED) {
		diag("mmap(PROT_EXEC) of " DEVICE ": %s: is /dev mounted noexec? "
		     "(mount -o remount,exec /dev)", strerror(errno));
		return false;
	}
	munmap(addr, PAGE_SIZE);
	return true;
}

static bool map_file(struct encl *encl, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		diag("%s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		diag("%s: not an ELF file", path);
		close(fd);
		return false;
	}
	encl->bin = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (encl->bin == MAP_FAILED) {
		encl->bin = NULL;
		diag("mmap of %s: %s", path, strerror(errno));
		return false;
	}
	encl->bin_size = st.st_size;
	return true;
}

static const Elf64_Phdr *program_headers(const struct encl *encl, unsigned int *count)
{
	const Elf64_Ehdr *ehdr = encl->bin;

	if (memcmp(ehdr->e_ident, ELFMAG, SELFMAG) || ehdr->e_ident[EI_CLASS] != ELFCLASS64 ||
	    ehdr->e_phentsize != sizeof(Elf64_Phdr) ||
	    ehdr->e_phoff + (uint64_t)ehdr->e_phnum * sizeof(Elf64_Phdr) > encl->bin_size)
		return NULL;
	*count = ehdr->e_phnum;
	return (const Elf64_Phdr *)((const char *)encl->bin + ehdr->e_phoff);
}

/* The PT_LOADs as load.c reads them: offsets from the first one's page. */
static bool read_segments(struct encl *encl, const char *path)
{
	unsigned int nr_phdrs, i, j = 0;
	const Elf64_Phdr *phdrs = program_headers(encl, &nr_phdrs);
	uint64_t src_offset = 0;

	if (!phdrs) {
		diag("%s: not an ELF64 file with program headers", path);
		return false;
	}
	encl->segments = calloc(nr_phdrs + 1, sizeof(*encl->segments));	/* + the heap */
	if (!encl->segments)
		return false;
	for (i = 0; i < nr_phdrs; i++) {
		const Elf64_Phdr *ph = &phdrs[i];
		struct encl_segment *seg = &encl->segments[j];
		uint64_t start = ph->p_offset & PAGE_MASK;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_flags & ~(PF_R | PF_W | PF_X)) {
			diag("%s: program header %u has invalid flags %#x", path, i, ph->p_flags);
			return false;
		}
		if (j == 0) {
			if (ph->p_flags != (PF_R | PF_W)) {
				diag("%s: the TCS segment has flags %#x, not PF_R|PF_W", path, ph->p_flags);
				return false;
			}
			src_offset = start;
			seg->prot = PROT_READ | PROT_WRITE;
			seg->flags = SGX_SECINFO_TCS;
		} else {
			seg->prot = (ph->p_flags & PF_R ? PROT_READ : 0) |
				    (ph->p_flags & PF_W ? PROT_WRITE : 0) |
				    (ph->p_flags & PF_X ? PROT_EXEC : 0);
			seg->flags = SGX_SECINFO_REG | seg->prot;	/* PROT_* = SECINFO R/W/X */
		}
		seg->offset = start - src_offset;
		seg->size = PAGE_ROUND_UP(ph->p_filesz);
		seg->measure = true;
		seg->src = (const char *)encl->bin + start;
		if (start < src_offset || start + seg->size > PAGE_ROUND_UP(encl->bin_size)) {
			diag("%s: PT_LOAD %u lies outside the file or before the TCS", path, i);
			return false;
		}
		j++;
	}
	if (j == 0) {
		diag("%s: no PT_LOAD", path);
		return false;
	}
	encl->nr_segments = j;
	return true;
}

static bool add_heap(struct encl *encl)
{
	const struct encl_segment *last = &encl->segments[encl->nr_segments - 1];
	struct encl_segment *heap = &encl->segments[encl->nr_segments];

	encl->heap = mmap(NULL, encl->heap_size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (encl->heap == MAP_FAILED) {
		encl->heap = NULL;
		diag("mmap of a %zu-byte heap: %s", encl->heap_size, strerror(errno));
		return false;
	}
	heap->offset = last->offset + last->size;
	heap->size = encl->heap_size;
	heap->prot = PROT_READ | PROT_WRITE;
	heap->flags = SGX_SECINFO_REG | SGX_SECINFO_R | SGX_SECINFO_W;
	heap->measure = false;
	heap->src = encl->heap;
	encl->nr_segments++;
	return true;
}

bool encl_load(struct encl *encl, const char *elf_path, size_t heap_size)
{
	const struct encl_segment *last;

	memset(encl, 0, sizeof(*encl));
	encl->heap_size = heap_size;
	encl->fd = open(DEVICE, O_RDWR);
	if (encl->fd < 0) {
		diag(DEVICE ": %s", strerror(errno));
		return false;
	}
	if (!device_probe(encl->fd) || !map_file(encl, elf_path) || !read_segments(encl, elf_path))
		return false;
	if (heap_size && !add_heap(encl))
		return false;
	if (encl_symbol(encl, "encl_buffer") != (uint64_t)encl_data_offset(encl)) {
		diag("%s: encl_buffer does not open the data segment", elf_path);
		return false;
	}
	last = &encl->segments[encl->nr_segments - 1];
	for (encl->size = PAGE_SIZE; encl->size < last->offset + last->size; encl->size <<= 1)
		;
	return true;
}

/*
 * The signer's file holds one record per heap size the enclave is signed for: the
 * size (8 bytes, little endian) and the SIGSTRUCT.
 */
bool encl_sign(struct encl *encl, const char *sigstructs_path)
{
	uint8_t record[8 + SIGSTRUCT_SIZE];
	FILE *f = fopen(sigstructs_path, "rb");
	bool found = false;

	if (!f) {
		diag("%s: %s", sigstructs_path, strerror(errno));
		return false;
	}
	while (!found && fread(record, sizeof(record), 1, f) == 1) {
		uint64_t heap_size;

		memcpy(&heap_size, record, sizeof(heap_size));
		if (heap_size == encl->heap_size) {
			memcpy(encl->sigstruct, record + 8, SIGSTRUCT_SIZE);
			found = true;
		}
	}
	fclose(f);
	if (!found)
		diag("%s: no SIGSTRUCT for a heap of %zu bytes", sigstructs_path, encl->heap_size);
	return found;
}

/* encl_map_area(): 2 * size of PROT_NONE, keep the size-aligned part. */
static bool reserve_elrange(struct encl *encl)
{
	uint8_t *area = mmap(NULL, 2 * encl->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t base;

	if (area == MAP_FAILED) {
		diag("reserving ELRANGE: %s", strerror(errno));
		return false;
	}
	base = ((uint64_t)area + encl->size - 1) & ~(encl->size - 1);
	if (base > (uint64_t)area)
		munmap(area, base - (uint64_t)area);
	if ((uint64_t)area + 2 * encl->size > base + encl->size)
		munmap((void *)(base + encl->size), (uint64_t)area + encl->size - base);
	encl->base = base;
	return true;
}

static bool ioc_create(struct encl *encl)
{
	struct sgx_secs secs = {
		.size = encl->size,
		.base = encl->base,
		.ssa_frame_size = 1,
		.attributes = SGX_ATTR_MODE64BIT,
		.xfrm = 3,			/* x87 and SSE */
	};
	struct sgx_enclave_create ioc = { .src = (uint64_t)&secs };

	if (ioctl(encl->fd, SGX_IOC_ENCLAVE_CREATE, &ioc)) {
		diag("SGX_IOC_ENCLAVE_CREATE: %s", strerror(errno));
		return false;
	}
	return true;
}

static bool ioc_add_pages(struct encl *encl, const struct encl_segment *seg)
{
	struct sgx_secinfo secinfo = { .flags = seg->flags };
	struct sgx_enclave_add_pages ioc = {
		.src = (uint64_t)seg->src,
		.offset = seg->offset,
		.length = seg->size,
		.secinfo = (uint64_t)&secinfo,
		.flags = seg->measure ? SGX_PAGE_MEASURE : 0,
	};

	if (ioctl(encl->fd, SGX_IOC_ENCLAVE_ADD_PAGES, &ioc)) {
		diag("SGX_IOC_ENCLAVE_ADD_PAGES at %#lx: %s (%llu bytes added)",
		     (unsigned long)seg->offset, strerror(errno), (unsigned long long)ioc.count);
		return false;
	}
	return true;
}

bool encl_build(struct encl *encl)
{
	struct sgx_enclave_init ioc = { .sigstruct = (uint64_t)encl->sigstruct };
	unsigned int i;

	if (!reserve_elrange(encl) || !ioc_create(encl))
		return false;
	/* before any mapping of the device: the pages' permissions bound the mappings' */
	for (i = 0; i < encl->nr_segments; i++)
		if (!ioc_add_pages(encl, &encl->segments[i]))
			return false;
	if (ioctl(encl->fd, SGX_IOC_ENCLAVE_INIT, &ioc)) {
		diag("SGX_IOC_ENCLAVE_INIT: %s", strerror(errno));
		return false;
	}
	return true;
}

bool encl_map(struct encl *encl)
{
	unsigned int i;

	for (i = 0; i < encl->nr_segments; i++) {
		const struct encl_segment *seg = &encl->segments[i];
		void *addr = mmap((void *)(encl->base + seg->offset), seg->size, seg->prot,
				  MAP_SHARED | MAP_FIXED, encl->fd, 0);

		if (addr == MAP_FAILED) {
			diag("mmap of the segment at %#lx: %s", (unsigned long)seg->offset,
			     strerror(errno));
			return false;
		}
	}
	return true;
}

void encl_delete(struct encl *encl)
{
	if (encl->base)
		munmap((void *)encl->base, encl->size);
	if (encl->heap)
		munmap(encl->heap, encl->heap_size);
	if (encl->bin)
		munmap(encl->bin, encl->bin_size);
	if (encl->fd >= 0)
		close(encl->fd);
	free(encl->segments);
	memset(encl, 0, sizeof(*encl));
	encl->fd = -1;
}

/* The value of a symbol of the ELF file's .symtab (an offset: the enclave is linked
 * at 0), or 0 without one (load.c encl_get_entry()). */
uint64_t encl_symbol(const struct encl *encl, const char *name)
{
	const Elf64_Ehdr *ehdr = encl->bin;
	const Elf64_Shdr *shdrs = (const Elf64_Shdr *)((const char *)encl->bin + ehdr->e_shoff);
	unsigned int i;

	if (ehdr->e_shentsize != sizeof(Elf64_Shdr) ||
	    ehdr->e_shoff + (uint64_t)ehdr->e_shnum * sizeof(Elf64_Shdr) > encl->bin_size)
		return 0;
	for (i = 0; i < ehdr->e_shnum; i++) {
		const Elf64_Shdr *strtab = &shdrs[shdrs[i].sh_link % ehdr->e_shnum];
		const Elf64_Sym *sym = (const Elf64_Sym *)((const char *)encl->bin + shdrs[i].sh_offset);
		const char *names = (const char *)encl->bin + strtab->sh_offset;
		size_t n;

		if (shdrs[i].sh_type != SHT_SYMTAB || shdrs[i].sh_offset + shdrs[i].sh_size > encl->bin_size ||
		    strtab->sh_offset + strtab->sh_size > encl->bin_size)
			continue;
		for (n = 0; n < shdrs[i].sh_size / sizeof(*sym); n++)
			if (sym[n].st_name < strtab->sh_size &&
			    !strncmp(names + sym[n].st_name, name, strtab->sh_size - sym[n].st_name))
				return sym[n].st_value;
	}
	return 0;
}

/* The first RW segment after the TCS (main.c encl_get_data_offset()). */
off_t encl_data_offset(const struct encl *encl)
{
	unsigned int i;

	for (i = 1; i < encl->nr_segments; i++)
		if (encl->segments[i].prot == (PROT_READ | PROT_WRITE))
			return encl->segments[i].offset;
	return -1;
}

/* Every segment's size added up: where the pages added at build time end. */
size_t encl_loaded_size(const struct encl *encl)
{
	size_t total = 0;
	unsigned int i;

	for (i = 0; i < encl->nr_segments; i++)
		total += encl->segments[i].size;
	return total;
}
