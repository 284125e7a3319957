/* test_scrub.c: the scrub's decisions (workers/scrub.c), without PowerVM: what is an orphan
 * mapping, disk or media, what an operation in flight or nova's list protects, what a
 * mapping to a live partition keeps; and the batch builders it sends (src/pvm/build_batch.c)
 * on a hand-written VIOS entry and the captured volume group. */
#include "scrub.h"

#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* An instance whose first hex digit has the top bit set: its partition UUID differs. */
#define INST     "9f1c2a44-9b7e-4c1d-8e2f-0123456789ab"
#define INST_PAR "1F1C2A44-9B7E-4C1D-8E2F-0123456789AB"
#define OTHER    "4a5b6c7d-1111-4222-8333-444455556666"
#define OTHERPAR "4A5B6C7D-1111-4222-8333-444455556666"
#define HREF(u)  "https://hmc:12443/rest/api/uom/ManagedSystem/MS/LogicalPartition/" u

static const struct pvm_vscsi_mapping live_disk = {
        .lpar_href = HREF(OTHERPAR),
        .has_client = true,
        .has_server = true,
        .server = {.name = "vhost0"},
        .storage_kind = PVM_STORAGE_VDISK,
        .storage_name = "datadisk1",
};

static void test_scrub_mappings(void **state)
{
	(void)state;
	const char *parts[] = {OTHERPAR};
	struct pvm_scrub_facts f = {.partitions = parts, .n_partitions = 1};
	const char *why;
	assert_int_equal(pvm_scrub_judge_mapping(&f, &live_disk, &why), PVM_SCRUB_KEEP);

	struct pvm_vscsi_mapping m = live_disk;
	m.storage_kind = PVM_STORAGE_NONE;
	m.storage_name = NULL;
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_ORPHAN);
	assert_string_equal(why, "no storage");

	m = live_disk;
	m.has_client = false; /* server side only */
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_ORPHAN);
	assert_non_null(strstr(why, "no client adapter"));

	m = live_disk;
	m.lpar_href = HREF(INST_PAR "?group=None"); /* a partition that is gone */
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_ORPHAN);
	assert_string_equal(why, "its partition is gone");

	/* the same mapping, while the instance whose derived partition it is has an
	 * operation in flight (the instance UUID's first digit differs from the partition's) */
	const char *fly[] = {INST};
	f.in_flight = fly;
	f.n_in_flight = 1;
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_IN_FLIGHT);

	/* storage of an instance in flight mapped to some dead partition */
	m.lpar_href = HREF("0AAAAAAA-1111-4222-8333-444455556666");
	m.storage_name = "b_9f1c2a449b7e4";
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_IN_FLIGHT);
	m.storage_name = "b_0f1c2a449b7e4";
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_ORPHAN);

	/* no link at all but a client adapter: nothing says it is dead */
	m = live_disk;
	m.lpar_href = NULL;
	assert_int_equal(pvm_scrub_judge_mapping(&f, &m, &why), PVM_SCRUB_KEEP);
}

static void test_scrub_objects(void **state)
{
	(void)state;
	const char *parts[] = {OTHERPAR};
	struct pvm_scrub_facts f = {.partitions = parts, .n_partitions = 1};
	char prefix[33];
	const char *why;
	/* not ours */
	static const struct {
		enum pvm_scrub_kind kind;
		const char *name;
	} not_ours[] = {
	        {PVM_SCRUB_KIND_VDISK, "datadisk1"},
	        {PVM_SCRUB_KIND_VDISK, "b_9F1C2A449B7E4"}, /* upper case: not our spelling */
	        {PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e"},  /* 12 digits */
	        {PVM_SCRUB_KIND_VDISK, "b_zzzzzzzzzzzzz"}, /* not hex */
	        {PVM_SCRUB_KIND_MEDIA, "b_9f1c2a449b7e4"}, /* a disk name as media */
	        {PVM_SCRUB_KIND_VDISK, "cfg_9f1c2a449b7e4c1d8e2f012345678.iso"},
	        {PVM_SCRUB_KIND_MEDIA, "cfg_9f1c2a449b7e4c1d8e2f012345678.img"},
	        {PVM_SCRUB_KIND_VDISK, "boot_9f1c2a449b7e4c1d8e2f0123456789ab"}, /* an LU's */
	        {PVM_SCRUB_KIND_MAPPING, "b_9f1c2a449b7e4"},
	        {PVM_SCRUB_KIND_VDISK, NULL},
	};
	for (size_t i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++) {
		assert_int_equal(pvm_scrub_judge_object(&f, not_ours[i].kind, not_ours[i].name,
		                                        prefix, &why),
		                 PVM_SCRUB_KEEP);
		assert_string_equal(why, "not ours");
		assert_string_equal(prefix, "");
	}
	/* ours, no partition, nova's list unknown: deferred */
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_DEFER);
	assert_string_equal(prefix, "9f1c2a449b7e4");
	assert_int_equal(pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_MEDIA,
	                                        "cfg_9f1c2a449b7e4c1d8e2f012345678.iso", prefix,
	                                        &why),
	                 PVM_SCRUB_DEFER);
	assert_string_equal(prefix, "9f1c2a449b7e4c1d8e2f012345678");
	/* nova's list known and without it: orphan; with it: kept */
	const char *nova[] = {OTHER};
	f.nova_known = true;
	f.nova = nova;
	f.n_nova = 1;
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_ORPHAN);
	const char *nova2[] = {"9F1C2A44-9B7E-4C1D-8E2F-0123456789AB"};
	f.nova = nova2;
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_KEEP);
	assert_string_equal(why, "its instance is in nova's list");
	f.nova = nova;
	/* its derived partition exists (first digit 9 -> 1): kept */
	const char *parts2[] = {OTHERPAR, INST_PAR};
	f.partitions = parts2;
	f.n_partitions = 2;
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_KEEP);
	assert_string_equal(why, "its instance's partition exists");
	/* a partition with the underived UUID (9F1C...) does not count */
	const char *parts3[] = {"9F1C2A44-9B7E-4C1D-8E2F-0123456789AB"};
	f.partitions = parts3;
	f.n_partitions = 1;
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_ORPHAN);
	/* in flight wins over everything but a live partition */
	const char *fly[] = {INST};
	f.in_flight = fly;
	f.n_in_flight = 1;
	assert_int_equal(pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_MEDIA,
	                                        "cfg_9f1c2a449b7e4c1d8e2f012345678.iso", prefix,
	                                        &why),
	                 PVM_SCRUB_IN_FLIGHT);
	f.nova_known = false;
	assert_int_equal(
	        pvm_scrub_judge_object(&f, PVM_SCRUB_KIND_VDISK, "b_9f1c2a449b7e4", prefix, &why),
	        PVM_SCRUB_IN_FLIGHT);
}

static void test_scrub_plan(void **state)
{
	(void)state;
	const char *parts[] = {OTHERPAR};
	const char *fly[] = {"5b5b5b5b-0000-4000-8000-000000000005"};
	const char *nova[] = {"6c6c6c6c-0000-4000-8000-000000000006"};
	struct pvm_scrub_facts f = {.partitions = parts,
	                            .n_partitions = 1,
	                            .in_flight = fly,
	                            .n_in_flight = 1,
	                            .nova_known = true,
	                            .nova = nova,
	                            .n_nova = 1};
	struct pvm_vscsi_mapping maps[4] = {live_disk, live_disk, live_disk, live_disk};
	/* 0: a live partition's mapping of an orphan-named disk: the disk is kept */
	maps[0].storage_name = "b_0a0a0a0a00000";
	/* 1: a dead partition's mapping of an orphan disk: both go */
	maps[1].lpar_href = HREF("0BBBBBBB-0000-4000-8000-000000000001");
	maps[1].has_client = false;
	maps[1].server.name = "vhost1";
	maps[1].storage_name = "b_0b0b0b0b00000";
	/* 2: in flight (the derived partition of 5b5b...), with its media */
	maps[2].lpar_href = HREF("5B5B5B5B-0000-4000-8000-000000000005");
	maps[2].has_client = false;
	maps[2].storage_kind = PVM_STORAGE_VOPT;
	maps[2].storage_name = "cfg_7d7d7d7d000040008000000000000.iso";
	/* 3: a live partition's mapping without storage */
	maps[3].storage_kind = PVM_STORAGE_NONE;
	maps[3].storage_name = NULL;
	maps[3].server.name = "vhost3";
	struct pvm_vios v = {
	        .lpar = {.name = "vios1"}, .scsi_mappings = maps, .n_scsi_mappings = 4};
	struct pvm_vdisk disks[] = {{.name = "b_0a0a0a0a00000"},
	                            {.name = "b_0b0b0b0b00000"},
	                            {.name = "b_6c6c6c6c00004"}, /* in nova's list */
	                            {.name = "b_0c0c0c0c00000"}, /* unmapped orphan */
	                            {.name = "rootvg_lv1"}};
	struct pvm_vopt media[] = {{.name = "cfg_7d7d7d7d000040008000000000000.iso"},
	                           {.name = "cfg_5b5b5b5b000040008000000000000.iso"}};
	struct pvm_volume_group vg = {
	        .name = "rootvg", .vdisks = disks, .n_vdisks = 5, .media = media, .n_media = 2};
	struct pvm_scrub_finding *fs = NULL;
	size_t n = 0;
	assert_int_equal(pvm_scrub_plan_vios(&f, &v, &vg, 1, &fs, &n), 0);
	assert_int_equal(n, 7);
	/* mappings first, in their order */
	assert_int_equal(fs[0].kind, PVM_SCRUB_KIND_MAPPING);
	assert_int_equal(fs[0].index, 1);
	assert_int_equal(fs[0].verdict, PVM_SCRUB_ORPHAN);
	assert_string_equal(fs[0].name, "vhost1");
	assert_string_equal(fs[0].partition, "0BBBBBBB-0000-4000-8000-000000000001");
	assert_string_equal(fs[0].storage, "virtual disk b_0b0b0b0b00000");
	assert_int_equal(fs[1].index, 2);
	assert_int_equal(fs[1].verdict, PVM_SCRUB_IN_FLIGHT);
	assert_int_equal(fs[2].index, 3);
	assert_int_equal(fs[2].verdict, PVM_SCRUB_ORPHAN);
	assert_string_equal(fs[2].storage, "none");
	/* then the objects: b_0a.. (mapped to a live partition) and b_6c.. (nova) are kept */
	assert_int_equal(fs[3].kind, PVM_SCRUB_KIND_VDISK);
	assert_string_equal(fs[3].name, "b_0b0b0b0b00000");
	assert_int_equal(fs[3].verdict, PVM_SCRUB_ORPHAN);
	assert_string_equal(fs[4].name, "b_0c0c0c0c00000");
	assert_int_equal(fs[4].verdict, PVM_SCRUB_ORPHAN);
	assert_int_equal(fs[4].index, 3);
	assert_int_equal(fs[4].group, 0);
	/* the media carried by the in-flight mapping is in flight; cfg_5b.. by its name */
	assert_int_equal(fs[5].kind, PVM_SCRUB_KIND_MEDIA);
	assert_string_equal(fs[5].name, "cfg_7d7d7d7d000040008000000000000.iso");
	assert_int_equal(fs[5].verdict, PVM_SCRUB_IN_FLIGHT);
	assert_string_equal(fs[6].name, "cfg_5b5b5b5b000040008000000000000.iso");
	assert_int_equal(fs[6].verdict, PVM_SCRUB_IN_FLIGHT);
	assert_string_equal(fs[6].prefix, "5b5b5b5b000040008000000000000");
	free(fs);
	/* nova's list unknown: the orphan disks are deferred, the mappings are not */
	f.nova_known = false;
	assert_int_equal(pvm_scrub_plan_vios(&f, &v, &vg, 1, &fs, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(fs[0].verdict, PVM_SCRUB_ORPHAN);
	assert_int_equal(fs[2].verdict, PVM_SCRUB_ORPHAN);
	assert_int_equal(fs[3].verdict, PVM_SCRUB_DEFER);
	assert_string_equal(fs[4].name, "b_6c6c6c6c00004");
	assert_int_equal(fs[4].verdict, PVM_SCRUB_DEFER);
	assert_int_equal(fs[5].verdict, PVM_SCRUB_DEFER);
	free(fs);
}

#define UOM "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
#define MAP(slot, disk)                                                                            \
	"<VirtualSCSIMapping schemaVersion=\"V1_0\"><AssociatedLogicalPartition "                  \
	"href=\"https://h/rest/api/uom/LogicalPartition/" OTHERPAR "\" rel=\"related\"/>"          \
	"<ClientAdapter><AdapterType>Client</AdapterType></ClientAdapter><ServerAdapter>"          \
	"<AdapterName>vhost" slot "</AdapterName></ServerAdapter><Storage><VirtualDisk>"           \
	"<DiskName>" disk "</DiskName></VirtualDisk></Storage></VirtualSCSIMapping>"

static const char vios_entry[] =
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>V1</id><content type=\"application/"
        "vnd.ibm.powervm.uom+xml; type=VirtualIOServer\"><VirtualIOServer xmlns=\"" UOM
        "\" schemaVersion=\"V1_0\"><Metadata><Atom><AtomID>V1</AtomID></Atom></Metadata>"
        "<PartitionID>1</PartitionID><PartitionName>vios1</PartitionName><PartitionState>"
        "running</PartitionState><VirtualSCSIMappings>" MAP("0", "d0") MAP("1", "d1")
                MAP("2", "d2") "</VirtualSCSIMappings></VirtualIOServer></content></entry>";

static void test_scrub_build_batch(void **state)
{
	(void)state;
	struct pvm_rest_error err = {0};
	size_t idx[] = {2, 0};
	char *body = pvm_build_vios_remove_scsi_at(vios_entry, strlen(vios_entry), idx, 2, &err);
	assert_non_null(body);
	struct pvm_vios_list *l = NULL;
	assert_int_equal(pvm_parse_vios(body, strlen(body), NULL, &l, &err), 0);
	assert_int_equal(l->count, 1);
	assert_int_equal(l->items[0].n_scsi_mappings, 1);
	assert_string_equal(l->items[0].scsi_mappings[0].storage_name, "d1");
	assert_string_equal(l->items[0].scsi_mappings[0].server.name, "vhost1");
	pvm_vios_list_free(l);
	free(body);
	size_t bad[] = {3};
	assert_null(pvm_build_vios_remove_scsi_at(vios_entry, strlen(vios_entry), bad, 1, &err));
	assert_int_equal(err.code, PVM_EINVAL);

	char *path = pvm_test_source_path("tests/fixtures/powervm/fake_volume_group.xml");
	char *vg = NULL;
	size_t len = 0;
	assert_int_equal(pvm_read_file(path, 1 << 20, &vg, &len), 0);
	free(path);
	const char *disks[] = {"asdf", "absent"};
	const char *media[] = {"blank_media_2"};
	size_t removed = 0;
	body = pvm_build_vg_remove_objects(vg, len, disks, 2, media, 1, &removed, &err);
	assert_non_null(body);
	assert_int_equal(removed, 2);
	struct pvm_volume_group_list *g = NULL;
	assert_int_equal(pvm_parse_volume_group(body, strlen(body), NULL, &g, &err), 0);
	assert_int_equal(g->items[0].n_vdisks, 0);
	assert_int_equal(g->items[0].n_media, 1);
	assert_string_equal(g->items[0].media[0].name, "blank_media1");
	pvm_volume_group_list_free(g);
	free(body);
	free(vg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scrub_mappings),
	        cmocka_unit_test(test_scrub_objects),
	        cmocka_unit_test(test_scrub_plan),
	        cmocka_unit_test(test_scrub_build_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
