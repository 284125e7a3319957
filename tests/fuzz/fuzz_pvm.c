/* fuzz_pvm.c: libFuzzer targets for the PowerVM client's parsers (src/pvm/). One source,
 * one binary per parser: FUZZ_KIND selects it (tests/pvm.cmake builds them when PVM_FUZZ
 * is on; scripts/fuzz runs them seeded with tests/fixtures/powervm). Every input must give
 * 0 or an error code, never a crash, a leak or undefined behaviour. */
#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_LIST(tag)                                                                            \
	do {                                                                                       \
		struct pvm_##tag##_list *l = NULL;                                                 \
		if (!pvm_parse_##tag(s, size, "\"1\"", &l, &err) && l->count)                      \
			touch_meta(&l->items[0].meta, l->count);                                   \
		pvm_##tag##_list_free(l);                                                          \
	} while (0)

static volatile size_t sink;

__attribute__((unused)) static void touch_meta(const struct pvm_meta *m, size_t n)
{
	if (n)
		sink += (m->uuid ? strlen(m->uuid) : 0) + (m->etag ? strlen(m->etag) : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Parsers take (pointer, length): no NUL is needed, none is added. */
	const char *s = (const char *)data;
	struct pvm_rest_error err;
#if FUZZ_KIND == 0
	PARSE_LIST(lpar);
#elif FUZZ_KIND == 1
	PARSE_LIST(managed_system);
#elif FUZZ_KIND == 2
	struct pvm_vios_list *l = NULL;
	if (!pvm_parse_vios(s, size, NULL, &l, &err) && l->count)
		touch_meta(&l->items[0].lpar.meta, l->count);
	pvm_vios_list_free(l);
#elif FUZZ_KIND == 3
	PARSE_LIST(volume_group);
#elif FUZZ_KIND == 4
	PARSE_LIST(ssp);
#elif FUZZ_KIND == 5
	PARSE_LIST(tier);
#elif FUZZ_KIND == 6
	PARSE_LIST(logical_unit);
#elif FUZZ_KIND == 7
	PARSE_LIST(cna);
#elif FUZZ_KIND == 8
	PARSE_LIST(vswitch);
#elif FUZZ_KIND == 9
	PARSE_LIST(event);
#elif FUZZ_KIND == 10
	PARSE_LIST(file);
#elif FUZZ_KIND == 11
	struct pvm_job *j = NULL;
	if (!pvm_parse_job(s, size, &j, &err))
		sink += (size_t)j->status + j->n_results;
	pvm_job_free(j);
#elif FUZZ_KIND == 12
	char tok[256], file[256];
	pvm_parse_logon(s, size, tok, sizeof(tok), file, sizeof(file), &err);
#elif FUZZ_KIND == 13
	pvm_parse_http_error(s, size, &err);
#elif FUZZ_KIND == 14
	/* The builders that edit what the server sent. */
	struct pvm_lpar_spec u = {.memory_mb = 4096, .vcpus = 2, .name = "fuzz"};
	free(pvm_build_lpar_update(s, size, &u, &err));
	struct pvm_vdisk_spec d = {.name = "fz", .capacity_gb = 1};
	char *b = pvm_build_vg_add_vdisk(s, size, &d, &err);
	if (b)
		free(pvm_build_vg_remove_vdisk(b, strlen(b), "fz", &err));
	free(b);
	struct pvm_scsi_map_spec m = {.lpar_href = "https://h/rest/api/uom/LogicalPartition/x",
	                              .kind = PVM_STORAGE_VDISK,
	                              .storage_name = "fz"};
	b = pvm_build_vios_add_scsi(s, size, &m, &err);
	if (b)
		free(pvm_build_vios_remove_scsi(b, strlen(b), m.lpar_href, "fz", &err));
	free(b);
#elif FUZZ_KIND == 15
	/* The pcm documents of the host sampler (LongTermMonitor feed, preference edit). */
	struct pvm_ltm_list *l = NULL;
	if (!pvm_parse_ltm_feed(s, size, &l, &err))
		for (size_t i = 0; i < l->count; i++)
			sink += strlen(l->items[i].href) + strlen(l->items[i].title);
	pvm_ltm_list_free(l);
	bool changed = false;
	free(pvm_build_pcm_ltm_enable(s, size, &changed, &err));
#else
#error "FUZZ_KIND 0..15"
#endif
	return 0;
}
