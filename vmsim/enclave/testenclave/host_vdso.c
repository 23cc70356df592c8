// SPDX-License-Identifier: GPL-2.0
/*
 * vmsim test enclave host: finding a function of the vDSO, as the Linux SGX
 * kselftest finds __vdso_sgx_enter_enclave (main.c vdso_get_symtab(),
 * vdso_symtab_get()): the vDSO's ELF header is at AT_SYSINFO_EHDR; its PT_DYNAMIC
 * names the dynamic symbol table, its strings and the DT_HASH table, whose chain
 * count is the number of symbols. The symbols are searched one by one.
 */
#include <elf.h>
#include <string.h>
#include <sys/auxv.h>

#include "host.h"

/* d_ptr of the vDSO's dynamic entry `tag`, or 0 */
static Elf64_Addr dynamic_entry(const Elf64_Dyn *dyn, Elf64_Sxword tag)
{
	for (; dyn->d_tag != DT_NULL; dyn++)
		if (dyn->d_tag == tag)
			return dyn->d_un.d_ptr;
	return 0;
}

void *vdso_symbol(const char *name)
{
	const char *image = (const char *)getauxval(AT_SYSINFO_EHDR);
	const Elf64_Ehdr *ehdr = (const Elf64_Ehdr *)image;
	const Elf64_Phdr *phdrs;
	const Elf64_Dyn *dynamic = NULL;
	const Elf64_Sym *symtab;
	const Elf64_Word *hash;
	const char *strtab;
	uintptr_t bias = 0;
	unsigned int i;

	if (!image)
		return NULL;
	phdrs = (const Elf64_Phdr *)(image + ehdr->e_phoff);
	for (i = 0; i < ehdr->e_phnum; i++) {
		if (phdrs[i].p_type == PT_LOAD && phdrs[i].p_offset == 0)
			bias = (uintptr_t)image - phdrs[i].p_vaddr;
		if (phdrs[i].p_type == PT_DYNAMIC)
			dynamic = (const Elf64_Dyn *)(image + phdrs[i].p_offset);
	}
	if (!dynamic)
		return NULL;
	symtab = (const Elf64_Sym *)(bias + dynamic_entry(dynamic, DT_SYMTAB));
	strtab = (const char *)(bias + dynamic_entry(dynamic, DT_STRTAB));
	hash = (const Elf64_Word *)(bias + dynamic_entry(dynamic, DT_HASH));
	if ((uintptr_t)symtab == bias || (uintptr_t)strtab == bias || (uintptr_t)hash == bias)
		return NULL;
	for (i = 0; i < hash[1]; i++)		/* nchain: one per symbol */
		if (symtab[i].st_shndx != SHN_UNDEF && !strcmp(strtab + symtab[i].st_name, name))
			return (void *)(bias + symtab[i].st_value);
	return NULL;
}
