/* test_pvm_views.c: the PowerVM client's parsers and builders against the captured server
 * responses (tests/fixtures/powervm): concrete values, counts, required elements, malformed
 * and truncated XML, entity refusal, builders' schema order. No network. */
#include "testutil.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *fixture(const char *name, size_t *len)
{
	char rel[256];
	snprintf(rel, sizeof(rel), "tests/fixtures/powervm/%s", name);
	char *path = pvm_test_source_path(rel);
	char *data = NULL;
	int rc = pvm_read_file(path, 64 << 20, &data, len);
	if (rc)
		fprintf(stderr, "cannot read %s: %s\n", path, pvm_strerror(rc));
	assert_int_equal(rc, 0);
	free(path);
	return data;
}

/* Index of the first occurrence of needle in hay, or -1. */
static long pos(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);
	return p ? (long)(p - hay) : -1;
}

/* Asserts that the needles appear in this order. */
static void assert_order(const char *s, const char *const *needles)
{
	long last = -1;
	for (size_t i = 0; needles[i]; i++) {
		long p = pos(s, needles[i]);
		if (p < 0 || p < last)
			fprintf(stderr, "order: '%s' at %ld after %ld in\n%s\n", needles[i], p,
			        last, s);
		assert_true(p > last);
		last = p;
	}
}

static void test_pvm_views_lpar_feed(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("fake_lpar_feed.xml", &len);
	struct pvm_lpar_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_lpar(x, len, NULL, &l, &err), 0);
	assert_int_equal(l->count, 17);
	const struct pvm_lpar *p = &l->items[0];
	assert_string_equal(p->name, "nls2-a7444660-00000002");
	assert_string_equal(p->meta.uuid, "4AC82E78-8EFF-4BAA-87C9-6B243D0C1359");
	assert_string_equal(p->uuid, "4AC82E78-8EFF-4BAA-87C9-6B243D0C1359");
	assert_string_equal(p->meta.etag, "-384789939");
	assert_non_null(p->meta.href);
	assert_int_equal(p->id, 26);
	assert_string_equal(p->state, "running");
	assert_string_equal(p->type, "AIX/Linux");
	assert_int_equal(p->memory_mb, 2048);
	assert_int_equal(p->memory_current_mb, 2048);
	assert_int_equal(p->vcpus, 1);
	assert_true(p->proc_units > 0.49 && p->proc_units < 0.51);
	assert_int_equal(p->uncapped_weight, 128);
	assert_false(p->dedicated_procs);
	assert_string_equal(p->rmc_state, "none");
	assert_string_equal(p->migration_state, "Not_Migrating");
	assert_false(p->is_mgmt);
	assert_string_equal(p->compat_mode, "POWER7");
	int running = 0, inactive = 0, error = 0, rmc_active = 0;
	for (size_t i = 0; i < l->count; i++) {
		const char *s = l->items[i].state;
		running += !strcmp(s, "running");
		inactive += !strcmp(s, "not activated");
		error += !strcmp(s, "error");
		rmc_active += l->items[i].rmc_state && !strcmp(l->items[i].rmc_state, "active");
	}
	assert_int_equal(running, 13);
	assert_int_equal(inactive, 3);
	assert_int_equal(error, 1);
	assert_int_equal(rmc_active, 3);
	const struct pvm_lpar *last = &l->items[16];
	assert_string_equal(last->name, "dst_demo-a981b540-00000009");
	assert_int_equal(last->id, 9);
	assert_string_equal(last->meta.uuid, "4BA68943-9A77-4B0B-A936-6A3F9EE9B7C7");
	pvm_lpar_list_free(l);
	free(x);
}

static void test_pvm_views_lpar_ibmi_entry(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("lpar_ibmi.xml", &len);
	struct pvm_lpar_list *l = NULL;
	assert_int_equal(pvm_parse_lpar(x, len, "\"1234\"", &l, NULL), 0);
	assert_int_equal(l->count, 1);
	const struct pvm_lpar *p = &l->items[0];
	assert_string_equal(p->name, "powervmtest1");
	assert_string_equal(p->type, "OS400");
	assert_int_equal(p->id, 4);
	assert_string_equal(p->state, "not activated");
	assert_true(p->dedicated_procs);
	assert_string_equal(p->meta.uuid, "17294AEF-F0DE-4644-95F1-7635D3F88130");
	assert_non_null(p->meta.etag);
	pvm_lpar_list_free(l);
	free(x);
}

static void test_pvm_views_managed_system(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("sys_with_sriov.xml", &len);
	struct pvm_managed_system_list *l = NULL;
	assert_int_equal(pvm_parse_managed_system(x, len, NULL, &l, NULL), 0);
	assert_int_equal(l->count, 1);
	const struct pvm_managed_system *m = &l->items[0];
	assert_string_equal(m->name, "z1403ce-8408-E8E-SN10678CV");
	assert_string_equal(m->mtms, "8408-E8E*10678CV");
	assert_string_equal(m->meta.uuid, "95329c84-9a01-330f-809e-2e5577110d1e");
	assert_string_equal(m->meta.etag, "2102051528");
	assert_string_equal(m->state, "operating");
	assert_int_equal(m->memory_configurable_mb, 524288);
	assert_int_equal(m->memory_available_mb, 491008);
	assert_int_equal(m->memory_region_mb, 256);
	assert_true(m->proc_units_configurable == 40.0);
	assert_true(m->proc_units_available == 36.0);
	assert_int_equal(m->n_compat_modes, 5);
	assert_string_equal(m->compat_modes[0], "default");
	assert_string_equal(m->compat_modes[4], "POWER8");
	assert_true(m->active_migration_capable);
	assert_true(m->inactive_migration_capable);
	assert_int_equal(m->max_active_migrations, 16);
	assert_int_equal(m->max_inactive_migrations, 16);
	assert_int_equal(m->active_migrations_in_progress, 0);
	assert_int_equal(pvm_managed_system_find(l, NULL), 0);
	assert_int_equal(pvm_managed_system_find(l, "8408-E8E*10678CV"), 0);
	assert_int_equal(pvm_managed_system_find(l, "95329C84-9A01-330F-809E-2E5577110D1E"), 0);
	assert_int_equal(pvm_managed_system_find(l, "z1403ce-8408-E8E-SN10678CV"), 0);
	assert_int_equal(pvm_managed_system_find(l, "other"), -1);
	pvm_managed_system_list_free(l);
	free(x);
}

static void test_pvm_views_vios(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("fake_vios.xml", &len);
	struct pvm_vios_list *l = NULL;
	assert_int_equal(pvm_parse_vios(x, len, NULL, &l, NULL), 0);
	assert_int_equal(l->count, 1);
	const struct pvm_vios *v = &l->items[0];
	assert_string_equal(v->lpar.name, "IO Server");
	assert_int_equal(v->lpar.id, 1);
	assert_string_equal(v->lpar.type, "Virtual IO Server");
	assert_string_equal(v->lpar.rmc_state, "active");
	assert_string_equal(v->lpar.meta.uuid, "14B854F7-42CE-4FF0-BD57-1D117054E701");
	assert_int_equal(v->lpar.memory_mb, 4096);
	assert_int_equal(v->n_vg_hrefs, 2);
	assert_non_null(strstr(v->vg_hrefs[1], "VolumeGroup/b6bdbf1f-eddf-3c81-8801-9859eb6fedcb"));
	assert_int_equal(v->n_media_repos, 1);
	assert_string_equal(v->media_repos[0].name, "VMLibrary");
	assert_int_equal(v->media_repos[0].n_media, 3);
	assert_string_equal(v->media_repos[0].media[0].name, "blank_media1");
	assert_int_equal(v->n_pvs, 2);
	assert_string_equal(v->pvs[0].name, "hdisk1");
	assert_int_equal(v->pvs[0].capacity_mb, 1089592);
	assert_int_equal(v->n_fc_ports, 4);
	assert_string_equal(v->fc_ports[0].name, "fcs1");
	assert_string_equal(v->fc_ports[0].wwpn, "10000090FA45473B");
	assert_string_equal(v->fc_ports[3].name, "fcs3");
	assert_int_equal(v->n_scsi_mappings, 0);
	assert_int_equal(v->n_vfc_mappings, 0);
	pvm_vios_list_free(l);
	free(x);
}

/* A VIOS entry with mappings, in the shape of the VirtualSCSIBus capture (no capture of a
 * VIOS with mappings exists). */
static const char vios_with_maps[] =
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>3E3F9BFC-C4EE-439E-B70A-1D369213ED83</id>"
        "<content type=\"application/vnd.ibm.powervm.uom+xml; type=VirtualIOServer\">"
        "<VirtualIOServer:VirtualIOServer xmlns:VirtualIOServer=\"http://www.ibm.com/xmlns/"
        "systems/power/firmware/uom/mc/2012_10/\" xmlns=\"http://www.ibm.com/xmlns/systems/power/"
        "firmware/uom/mc/2012_10/\" schemaVersion=\"V1_2_0\"><Metadata><Atom><AtomID>"
        "3E3F9BFC-C4EE-439E-B70A-1D369213ED83</AtomID></Atom></Metadata>"
        "<PartitionID kb=\"COD\">2</PartitionID><PartitionName>vios1</PartitionName>"
        "<PartitionState>running</PartitionState><Unknown><Deep/></Unknown>"
        "<VirtualFibreChannelMappings group=\"ViosFCMapping\"><VirtualFibreChannelMapping>"
        "<AssociatedLogicalPartition href=\"https://h/rest/api/uom/LogicalPartition/"
        "6A219EF0-591D-4199-ADC2-8F854B2F471B\" rel=\"related\"/><ClientAdapter><AdapterType>"
        "Client</AdapterType><LocalPartitionID>5</LocalPartitionID><WWPNs>C05076087CBA0169 "
        "C05076087CBA0168</WWPNs></ClientAdapter><Port><PortName>fcs0</PortName><WWPN>"
        "10000090FA45473A</WWPN></Port><ServerAdapter><AdapterType>Server</AdapterType>"
        "<AdapterName>vfchost0</AdapterName></ServerAdapter></VirtualFibreChannelMapping>"
        "</VirtualFibreChannelMappings>"
        "<VirtualSCSIMappings group=\"ViosSCSIMapping\"><VirtualSCSIMapping "
        "schemaVersion=\"V1_2_0\">"
        "<AssociatedLogicalPartition href=\"https://h/rest/api/uom/LogicalPartition/"
        "6A219EF0-591D-4199-ADC2-8F854B2F471B\" rel=\"related\"/><ClientAdapter><AdapterType>"
        "Client</AdapterType><LocalPartitionID>5</LocalPartitionID><VirtualSlotNumber>2"
        "</VirtualSlotNumber></ClientAdapter><ServerAdapter><AdapterType>Server</AdapterType>"
        "<AdapterName>vhost0</AdapterName><VirtualSlotNumber>5</VirtualSlotNumber>"
        "</ServerAdapter><Storage><VirtualDisk><DiskCapacity>1</DiskCapacity><DiskName>"
        "b_myvm826__fd7f</DiskName></VirtualDisk></Storage><TargetDevice>"
        "<LogicalVolumeVirtualTargetDevice><TargetName>vtscsi3</TargetName>"
        "</LogicalVolumeVirtualTargetDevice></TargetDevice></VirtualSCSIMapping>"
        "<VirtualSCSIMapping><AssociatedLogicalPartition href=\"https://h/rest/api/uom/"
        "LogicalPartition/11111111-591D-4199-ADC2-8F854B2F471B\" rel=\"related\"/><Storage>"
        "<VirtualOpticalMedia><MediaName>cfg_x.iso</MediaName></VirtualOpticalMedia></Storage>"
        "</VirtualSCSIMapping></VirtualSCSIMappings>"
        "</VirtualIOServer:VirtualIOServer></content></entry>";

static void test_pvm_views_vios_mappings(void **state)
{
	(void)state;
	struct pvm_vios_list *l = NULL;
	assert_int_equal(pvm_parse_vios(vios_with_maps, strlen(vios_with_maps), "\"77\"", &l, NULL),
	                 0);
	const struct pvm_vios *v = &l->items[0];
	assert_string_equal(v->lpar.meta.etag, "77");
	assert_int_equal(v->n_scsi_mappings, 2);
	const struct pvm_vscsi_mapping *m = &v->scsi_mappings[0];
	assert_non_null(strstr(m->lpar_href, "6A219EF0"));
	assert_true(m->has_client && m->has_server);
	assert_int_equal(m->client.lpar_id, 5);
	assert_int_equal(m->client.slot, 2);
	assert_string_equal(m->server.name, "vhost0");
	assert_int_equal(m->storage_kind, PVM_STORAGE_VDISK);
	assert_string_equal(m->storage_name, "b_myvm826__fd7f");
	assert_string_equal(m->target_name, "vtscsi3");
	assert_int_equal(v->scsi_mappings[1].storage_kind, PVM_STORAGE_VOPT);
	assert_false(v->scsi_mappings[1].has_client);
	assert_int_equal(v->n_vfc_mappings, 1);
	assert_string_equal(v->vfc_mappings[0].port_name, "fcs0");
	assert_string_equal(v->vfc_mappings[0].client.wwpns, "C05076087CBA0169 C05076087CBA0168");
	assert_string_equal(v->vfc_mappings[0].server.name, "vfchost0");
	pvm_vios_list_free(l);
}

static void test_pvm_views_volume_groups(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("fake_volume_group.xml", &len);
	struct pvm_volume_group_list *l = NULL;
	assert_int_equal(pvm_parse_volume_group(x, len, NULL, &l, NULL), 0);
	const struct pvm_volume_group *g = &l->items[0];
	assert_string_equal(g->name, "image_pool");
	assert_true(g->capacity_gb > 1063.2 && g->capacity_gb < 1063.4);
	assert_true(g->free_gb > 1051.1 && g->free_gb < 1051.3);
	assert_int_equal(g->n_vdisks, 1);
	assert_string_equal(g->vdisks[0].name, "asdf");
	assert_true(g->vdisks[0].capacity_gb == 1.0);
	assert_true(g->has_media_repo);
	assert_string_equal(g->media_repo_name, "VMLibrary");
	assert_int_equal(g->n_media, 2);
	assert_string_equal(g->media[0].name, "blank_media1");
	assert_string_equal(g->media[0].mount_type, "rw");
	assert_int_equal(g->n_pvs, 1);
	assert_string_equal(g->pvs[0].name, "hdisk1");
	pvm_volume_group_list_free(l);
	free(x);

	x = fixture("fake_volume_group2.xml", &len);
	assert_int_equal(pvm_parse_volume_group(x, len, NULL, &l, NULL), 0);
	assert_int_equal(l->count, 2);
	assert_string_equal(l->items[0].name, "rootvg");
	assert_int_equal(l->items[0].n_vdisks, 0);
	assert_false(l->items[0].has_media_repo);
	assert_string_equal(l->items[1].name, "image_pool");
	assert_int_equal(l->items[1].n_vdisks, 32);
	assert_string_equal(l->items[1].vdisks[0].name, "boot_b853fd66");
	assert_true(l->items[1].has_media_repo);
	pvm_volume_group_list_free(l);
	free(x);

	x = fixture("get_volume_group.xml", &len);
	assert_int_equal(pvm_parse_volume_group(x, len, NULL, &l, NULL), 0);
	assert_int_equal(l->count, 1);
	assert_string_equal(l->items[0].name, "rootvg");
	assert_true(l->items[0].has_media_repo);
	pvm_volume_group_list_free(l);
	free(x);
}

static void test_pvm_views_ssp_tier_lu(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("ssp.xml", &len);
	struct pvm_ssp_list *s = NULL;
	assert_int_equal(pvm_parse_ssp(x, len, NULL, &s, NULL), 0);
	assert_string_equal(s->items[0].name, "neossp1");
	assert_true(s->items[0].capacity_gb > 49.87 && s->items[0].capacity_gb < 49.89);
	assert_true(s->items[0].free_gb > 48.97 && s->items[0].free_gb < 48.99);
	assert_int_equal(s->items[0].n_lus, 1);
	assert_string_equal(s->items[0].lus[0].name, "neolu1");
	assert_true(s->items[0].lus[0].thin && s->items[0].lus[0].in_use);
	assert_int_equal(s->items[0].n_pvs, 1);
	assert_string_equal(s->items[0].pvs[0].name, "hdisk3");
	assert_true(s->items[0].pvs[0].fc_backed);
	pvm_ssp_list_free(s);
	free(x);

	x = fixture("tier.xml", &len);
	struct pvm_tier_list *t = NULL;
	assert_int_equal(pvm_parse_tier(x, len, NULL, &t, NULL), 0);
	assert_int_equal(t->count, 1);
	assert_string_equal(t->items[0].name, "SYSTEM");
	assert_true(t->items[0].is_default);
	assert_string_equal(t->items[0].meta.uuid, "c390432c-f139-3e7f-a168-e76f8c1cbc98");
	assert_non_null(strstr(t->items[0].ssp_href,
	                       "SharedStoragePool/535e1e51-50a6-3722-b6ed-907ff011a535"));
	pvm_tier_list_free(t);
	free(x);

	x = fixture("lufeed.xml", &len);
	struct pvm_logical_unit_list *lu = NULL;
	assert_int_equal(pvm_parse_logical_unit(x, len, NULL, &lu, NULL), 0);
	assert_int_equal(lu->count, 22);
	assert_string_equal(lu->items[0].name, "boot_pvm3_tempest_ser_a73d7083");
	assert_string_equal(lu->items[0].cloned_from,
	                    "296c097502d44311e58004000040f2e95dcf6063cd6bf7ed7b497780a1799236ab");
	assert_string_equal(lu->items[0].meta.etag, "1056750293");
	size_t clones = 0, images = 0;
	for (size_t i = 0; i < lu->count; i++) {
		clones += lu->items[i].cloned_from != NULL;
		images += !strcmp(lu->items[i].lu_type, "VirtualIO_Image");
	}
	assert_int_equal(clones, 18);
	assert_int_equal(images, 4);
	pvm_logical_unit_list_free(lu);
	free(x);
}

static void test_pvm_views_network(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("cna_feed.xml", &len);
	struct pvm_cna_list *c = NULL;
	assert_int_equal(pvm_parse_cna(x, len, NULL, &c, NULL), 0);
	assert_int_equal(c->count, 2);
	assert_string_equal(c->items[0].mac, "2AE44C673DFA");
	assert_int_equal(c->items[0].pvid, 1);
	assert_int_equal(c->items[0].slot, 3);
	assert_string_equal(c->items[1].mac, "92B22C0F30BD");
	assert_int_equal(c->items[1].pvid, 4094);
	assert_string_equal(c->items[0].meta.etag, "-132918571");
	pvm_cna_list_free(c);
	free(x);

	x = fixture("fake_cna.xml", &len);
	assert_int_equal(pvm_parse_cna(x, len, NULL, &c, NULL), 0);
	assert_string_equal(c->items[0].mac, "FAD4433ED120");
	assert_int_equal(c->items[0].pvid, 100);
	assert_string_equal(c->items[0].tagged_vlans, "53 54 55");
	assert_true(c->items[0].tagged_vlan_supported);
	assert_non_null(strstr(c->items[0].vswitch_href,
	                       "VirtualSwitch/9e42d4a9-9725-3007-9932-d85374ebf5cf"));
	pvm_cna_list_free(c);
	free(x);

	x = fixture("fake_vswitch_feed.xml", &len);
	struct pvm_vswitch_list *s = NULL;
	assert_int_equal(pvm_parse_vswitch(x, len, NULL, &s, NULL), 0);
	assert_int_equal(s->count, 1);
	assert_string_equal(s->items[0].name, "ETHERNET0(Default)");
	assert_int_equal(s->items[0].id, 0);
	assert_string_equal(s->items[0].mode, "Veb");
	assert_int_equal(s->items[0].n_network_hrefs, 6);
	pvm_vswitch_list_free(s);
	free(x);
}

static void test_pvm_views_jobs(void **state)
{
	(void)state;
	size_t len;
	struct pvm_job *j = NULL;
	struct pvm_rest_error err;
	char *x = fixture("job_response_completed_ok.xml", &len);
	assert_int_equal(pvm_parse_job(x, len, &j, &err), 0);
	assert_string_equal(j->job_id, "1375391227297");
	assert_int_equal(j->status, PVM_JOB_COMPLETED_OK);
	assert_int_equal(j->time_started, 1375441290642LL);
	assert_string_equal(j->operation, "ActivateCurrentProfile");
	assert_string_equal(j->group, "LogicalPartition");
	assert_string_equal(j->target_uuid, "6D459A1E-D028-4F36-83FF-207F29700FB8");
	assert_int_equal(j->n_results, 1);
	assert_string_equal(j->results[0].name, "returnCode");
	assert_string_equal(j->results[0].value, "0");
	assert_int_equal(pvm_job_outcome(j, &err), 0);
	pvm_job_free(j);
	free(x);

	x = fixture("job_response_completed_failed.xml", &len);
	assert_int_equal(pvm_parse_job(x, len, &j, &err), 0);
	assert_int_equal(j->status, PVM_JOB_COMPLETED_WITH_ERROR);
	assert_true(j->progress > 0.99 && j->progress < 1.01);
	assert_non_null(j->result_message);
	assert_true(!strncmp(j->result_message, "HSCL05DF The partition is not in a state", 40));
	assert_int_equal(pvm_job_outcome(j, &err), -EREMOTEIO);
	assert_false(err.transient);
	assert_non_null(strstr(err.message, "HSCL05DF"));
	pvm_job_free(j);
	free(x);

	x = fixture("job_response_exception.xml", &len);
	assert_int_equal(pvm_parse_job(x, len, &j, &err), 0);
	assert_int_equal(j->status, PVM_JOB_FAILED_BEFORE_COMPLETION);
	assert_string_equal(j->exception_message,
	                    "com.ibm.pmc.jaxb.api.server.jobs.PmcJobException: Unsupported "
	                    "commmand lssyscfg");
	assert_int_equal(pvm_job_outcome(j, &err), -EREMOTEIO);
	assert_non_null(strstr(err.message, "Unsupported commmand"));
	pvm_job_free(j);
	free(x);

	assert_int_equal(pvm_job_status_parse("RUNNING"), PVM_JOB_RUNNING);
	assert_false(pvm_job_status_terminal(PVM_JOB_NOT_STARTED));
	assert_true(pvm_job_status_terminal(PVM_JOB_COMPLETED_WITH_WARNINGS));
	assert_int_equal(pvm_job_status_parse("bogus"), PVM_JOB_STATUS_UNKNOWN);
}

static void test_pvm_views_web_objects(void **state)
{
	(void)state;
	size_t len;
	struct pvm_rest_error err;
	memset(&err, 0, sizeof(err));
	char *x = fixture("fake_httperror.xml", &len);
	assert_int_equal(pvm_parse_http_error(x, len, &err), 0);
	assert_int_equal(err.http_status, 500);
	assert_string_equal(err.reason, "Unknown internal error.");
	assert_non_null(strstr(err.message, "is busy processing some other request"));
	assert_string_equal(err.uri,
	                    "/rest/api/uom/SharedStoragePool/3dc777cb-e7b1-3f3d-b904-b5e34b47c6fe");
	assert_int_equal(pvm_client_http_code(500, err.message), -EBUSY);
	assert_true(pvm_client_transient(-EBUSY));
	free(x);

	char tok[512], file[256];
	x = fixture("logon.xml", &len);
	assert_int_equal(pvm_parse_logon(x, len, tok, sizeof(tok), file, sizeof(file), NULL), 0);
	assert_true(!strncmp(tok, "PUIoR6x0kP6fQqA7qZ8s", 20));
	assert_string_equal(file, "");
	free(x);
	x = fixture("logon_file.xml", &len);
	assert_int_equal(pvm_parse_logon(x, len, tok, sizeof(tok), file, sizeof(file), NULL), 0);
	assert_string_equal(file, "pypowervm/tests/data/token_file");
	assert_string_equal(tok, "");
	free(x);

	x = fixture("event.xml", &len);
	struct pvm_event_list *e = NULL;
	assert_int_equal(pvm_parse_event(x, len, NULL, &e, NULL), 0);
	assert_int_equal(e->count, 1);
	assert_string_equal(e->items[0].ev.type, "NEW_CLIENT");
	assert_int_equal(e->items[0].ev.kind, PVM_EVENT_RESYNC);
	assert_string_equal(e->items[0].ev.id, "1404864263191");
	assert_string_equal(e->items[0].ev.data, "");
	assert_string_equal(e->items[0].meta.etag, "581561747");
	pvm_event_list_free(e);
	free(x);

	/* the kinds that mean "re-read everything" */
	const char *evs =
	        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><content><Event "
	        "xmlns="
	        "\"http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/\"><EventType>"
	        "CACHE_CLEARED</EventType><EventID>5</EventID></Event></content></entry><entry>"
	        "<id>2</id><content><Event xmlns=\"http://www.ibm.com/xmlns/systems/power/firmware/"
	        "uom/mc/2012_10/\"><EventType>MISSING_EVENTS</EventType><EventID>6</EventID>"
	        "</Event></content></entry><entry><id>3</id><content><Event xmlns=\"http://www.ibm."
	        "com/xmlns/systems/power/firmware/uom/mc/2012_10/\"><EventType>MODIFY_URI"
	        "</EventType><EventID>7</EventID><EventData>https://h/rest/api/uom/"
	        "LogicalPartition/X</EventData><EventDetail>PartitionState,Other</EventDetail>"
	        "<Future>ignored</Future></Event></content></entry></feed>";
	assert_int_equal(pvm_parse_event(evs, strlen(evs), NULL, &e, NULL), 0);
	assert_int_equal(e->count, 3);
	assert_int_equal(e->items[0].ev.kind, PVM_EVENT_RESYNC);
	assert_int_equal(e->items[1].ev.kind, PVM_EVENT_RESYNC);
	assert_int_equal(e->items[2].ev.kind, PVM_EVENT_MODIFY);
	assert_string_equal(e->items[2].ev.detail, "PartitionState,Other");
	pvm_event_list_free(e);

	x = fixture("upload_file.xml", &len);
	struct pvm_file_list *f = NULL;
	assert_int_equal(pvm_parse_file(x, len, NULL, &f, NULL), 0);
	assert_string_equal(f->items[0].name, "boot_c3f7b1e7");
	assert_string_equal(f->items[0].file_uuid, "6233b070-31cc-4b57-99bd-37f80e845de9");
	assert_int_equal(f->items[0].expected_size, 4550656);
	assert_string_equal(f->items[0].enum_type, "BROKERED_DISK_IMAGE");
	assert_string_equal(f->items[0].target_vios_uuid, "14B854F7-42CE-4FF0-BD57-1D117054E701");
	pvm_file_list_free(f);
	free(x);
}

/* Every capture parses safely; the ones with a typed view parse typed; the wrong type is
 * an error that names both types. */
static void test_pvm_views_every_fixture(void **state)
{
	(void)state;
	static const char *const all[] = {"cna_feed.xml",
	                                  "event.xml",
	                                  "fake_cna.xml",
	                                  "fake_httperror.xml",
	                                  "fake_lpar_feed.xml",
	                                  "fake_network_bridge.xml",
	                                  "fake_vios.xml",
	                                  "fake_volume_group.xml",
	                                  "fake_volume_group2.xml",
	                                  "fake_vswitch_feed.xml",
	                                  "get_volume_group.xml",
	                                  "job_request_power_off.xml",
	                                  "job_response_completed_failed.xml",
	                                  "job_response_completed_ok.xml",
	                                  "job_response_exception.xml",
	                                  "logon.xml",
	                                  "logon_file.xml",
	                                  "lpar_ibmi.xml",
	                                  "ltm_feed.xml",
	                                  "lufeed.xml",
	                                  "managementconsole.xml",
	                                  "pcm_pref.xml",
	                                  "ssp.xml",
	                                  "sys_with_sriov.xml",
	                                  "tier.xml",
	                                  "upload_file.xml",
	                                  "vfc_client_adapter_feed.xml",
	                                  "vscsibus_feed.xml",
	                                  NULL};
	for (size_t i = 0; all[i]; i++) {
		size_t len;
		char *x = fixture(all[i], &len);
		struct pvm_lpar_list *l = NULL;
		struct pvm_rest_error err;
		memset(&err, 0, sizeof(err));
		int rc = pvm_parse_lpar(x, len, NULL, &l, &err);
		bool lpar =
		        !strcmp(all[i], "fake_lpar_feed.xml") || !strcmp(all[i], "lpar_ibmi.xml");
		if (lpar) {
			assert_int_equal(rc, 0);
		} else {
			/* well-formed, but not partitions: a typed error, never a crash */
			assert_int_equal(rc, PVM_ECORRUPT);
			assert_null(strstr(err.message, "malformed"));
		}
		pvm_lpar_list_free(l);
		free(x);
	}
	size_t len;
	char *x = fixture("fake_vios.xml", &len);
	struct pvm_lpar_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_lpar(x, len, NULL, &l, &err), PVM_ECORRUPT);
	assert_non_null(strstr(err.message, "expected LogicalPartition, found VirtualIOServer"));
	free(x);
}

static void test_pvm_views_missing_required(void **state)
{
	(void)state;
	size_t len;
	char *x = fixture("fake_lpar_feed.xml", &len);
	/* Drop the third partition's PartitionState. */
	char *p = x;
	for (int i = 0; i < 3; i++)
		p = strstr(p + 1, "<PartitionState ");
	char *e = strstr(p, "</PartitionState>") + strlen("</PartitionState>");
	memset(p, ' ', (size_t)(e - p));
	struct pvm_lpar_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_lpar(x, len, NULL, &l, &err), PVM_ECORRUPT);
	assert_null(l);
	assert_non_null(strstr(err.message, "missing required element PartitionState"));
	assert_non_null(strstr(err.message, "LogicalPartition entry "));
	assert_false(err.transient);
	free(x);

	const char *bad_num =
	        "<LogicalPartition xmlns=\"http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/"
	        "2012_10/\"><PartitionName>a</PartitionName><PartitionID>x1</PartitionID>"
	        "<PartitionState>running</PartitionState></LogicalPartition>";
	assert_int_equal(pvm_parse_lpar(bad_num, strlen(bad_num), NULL, &l, &err), PVM_ECORRUPT);
	assert_non_null(strstr(err.message, "PartitionID: not an integer"));
}

/* The pcm documents of the host sampler: the LongTermMonitor feed (links to JSON samples)
 * and the preference that switches long-term monitoring on. */
static void test_pvm_views_pcm(void **state)
{
	(void)state;
	size_t len;
	struct pvm_rest_error err;
	memset(&err, 0, sizeof(err));
	char *x = fixture("ltm_feed.xml", &len);
	struct pvm_ltm_list *l = NULL;
	assert_int_equal(pvm_parse_ltm_feed(x, len, &l, &err), 0);
	assert_true(l->count >= 2);
	size_t phyp = 0;
	for (size_t i = 0; i < l->count; i++) {
		assert_non_null(l->items[i].href);
		assert_non_null(strstr(l->items[i].href, "/RawMetrics/LongTermMonitor/LTM_"));
		assert_non_null(strstr(l->items[i].href, l->items[i].title));
		assert_non_null(l->items[i].category);
		if (strcmp(l->items[i].category, "phyp") == 0) {
			phyp++;
			assert_non_null(strstr(l->items[i].title, "_phyp_"));
		}
	}
	assert_true(phyp >= 1);
	pvm_ltm_list_free(l);
	free(x);
	/* 204 while monitoring is off: no samples */
	assert_int_equal(pvm_parse_ltm_feed("", 0, &l, &err), 0);
	assert_int_equal(l->count, 0);
	pvm_ltm_list_free(l);
	/* an entry without a link is named */
	const char *bad = "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title>t</title>"
	                  "</entry></feed>";
	assert_int_equal(pvm_parse_ltm_feed(bad, strlen(bad), &l, &err), PVM_ECORRUPT);
	assert_non_null(strstr(err.message, "no link"));
	assert_int_equal(pvm_parse_ltm_feed("<x/>", 4, &l, &err), PVM_ECORRUPT);

	x = fixture("pcm_pref.xml", &len);
	bool changed = false;
	char *body = pvm_build_pcm_ltm_enable(x, len, &changed, &err);
	assert_non_null(body);
	assert_true(changed);
	assert_non_null(strstr(body, "<LongTermMonitorEnabled"));
	assert_null(strstr(body, ">false</LongTermMonitorEnabled>"));
	assert_non_null(strstr(body, ">true</LongTermMonitorEnabled>"));
	assert_non_null(strstr(body, ">true</AggregationEnabled>"));
	assert_non_null(strstr(body, "ManagedSystemPcmPreference"));
	/* once on, nothing changes */
	char *again = pvm_build_pcm_ltm_enable(body, strlen(body), &changed, &err);
	assert_non_null(again);
	assert_false(changed);
	free(again);
	free(body);
	free(x);
	assert_null(pvm_build_pcm_ltm_enable("<a/>", 4, &changed, &err));
	assert_int_equal(err.code ? err.code : PVM_ECORRUPT, PVM_ECORRUPT);
}

static void test_pvm_views_malformed(void **state)
{
	(void)state;
	struct pvm_lpar_list *l = NULL;
	struct pvm_rest_error err;
	const char *bad = "<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<entry>\n<id>x</id>\n"
	                  "<content><a></b></content></entry></feed>";
	assert_int_equal(pvm_parse_lpar(bad, strlen(bad), NULL, &l, &err), PVM_ECORRUPT);
	assert_non_null(strstr(err.message, "malformed XML at line 4 column"));

	/* Every truncation of a real feed is an error with a position, or parses (never a
	 * crash); a random sample of cut points keeps the run short. */
	size_t len;
	char *x = fixture("fake_lpar_feed.xml", &len);
	uint64_t seed = pvm_test_seed("test_pvm_views_malformed"), st = seed;
	for (int i = 0; i < 300; i++) {
		size_t cut = (size_t)(pvm_test_rand(&st) % len);
		int rc = pvm_parse_lpar(x, cut, NULL, &l, &err);
		if (cut == 0) {
			assert_int_equal(rc, 0); /* empty body: an empty feed (204) */
			assert_int_equal(l->count, 0);
			pvm_lpar_list_free(l);
			continue;
		}
		assert_int_equal(rc, PVM_ECORRUPT);
		assert_non_null(strstr(err.message, " line "));
	}
	/* Random byte flips. */
	char *y = malloc(len);
	for (int i = 0; i < 200; i++) {
		memcpy(y, x, len);
		for (int k = 0; k < 4; k++)
			y[pvm_test_rand(&st) % len] = (char)(pvm_test_rand(&st) & 0xff);
		int rc = pvm_parse_lpar(y, len, NULL, &l, &err);
		if (!rc)
			pvm_lpar_list_free(l);
	}
	free(y);
	free(x);
	assert_int_equal(pvm_parse_lpar("", 0, NULL, &l, &err), 0);
	assert_int_equal(l->count, 0);
	pvm_lpar_list_free(l);
	assert_int_equal(pvm_parse_lpar("  \n", 3, NULL, &l, &err), 0);
	pvm_lpar_list_free(l);
	assert_int_equal(pvm_parse_lpar("<a>", 3, NULL, &l, &err), PVM_ECORRUPT);
}

static void test_pvm_views_no_entities(void **state)
{
	(void)state;
	struct pvm_lpar_list *l = NULL;
	struct pvm_rest_error err;
	const char *xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "
	                  "\"file:///etc/passwd\">]>\n<LogicalPartition><PartitionName>&e;"
	                  "</PartitionName></LogicalPartition>";
	assert_int_equal(pvm_parse_lpar(xxe, strlen(xxe), NULL, &l, &err), PVM_ECORRUPT);
	assert_non_null(strstr(err.message, "DOCTYPE refused"));
	const char *bomb = "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
	                   "<LogicalPartition>&b;</LogicalPartition>";
	assert_int_equal(pvm_parse_lpar(bomb, strlen(bomb), NULL, &l, &err), PVM_ECORRUPT);
	const char *undef = "<LogicalPartition><PartitionName>&nope;</PartitionName>"
	                    "</LogicalPartition>";
	assert_int_equal(pvm_parse_lpar(undef, strlen(undef), NULL, &l, &err), PVM_ECORRUPT);
	/* Predefined entities and character references are text. */
	const char *ok =
	        "<LogicalPartition xmlns=\"http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/"
	        "2012_10/\"><PartitionName>a&amp;b&#x41;</PartitionName><PartitionID>1"
	        "</PartitionID><PartitionState>running</PartitionState></LogicalPartition>";
	assert_int_equal(pvm_parse_lpar(ok, strlen(ok), NULL, &l, &err), 0);
	assert_string_equal(l->items[0].name, "a&bA");
	pvm_lpar_list_free(l);
}

/* ---------------------------------------------------------------- builders --------- */

static void test_pvm_views_build_lpar(void **state)
{
	(void)state;
	char uuid[37];
	assert_int_equal(pvm_lpar_uuid_from_instance("f4f2ad6c-28a1-4ac4-9f4e-5a2bd0f8d8a7", uuid),
	                 0);
	assert_string_equal(uuid, "74F2AD6C-28A1-4AC4-9F4E-5A2BD0F8D8A7");
	assert_int_equal(pvm_lpar_uuid_from_instance("not-a-uuid", uuid), PVM_EINVAL);
	struct pvm_lpar_spec s = {.uuid = uuid, .name = "inst-1", .memory_mb = 2048, .vcpus = 2};
	struct pvm_rest_error err;
	char *b = pvm_build_lpar_create(&s, &err);
	assert_non_null(b);
	static const char *const order[] = {"<LogicalPartition:LogicalPartition",
	                                    "<AtomID>74F2AD6C-28A1",
	                                    "<AllowPerformanceDataCollection>",
	                                    "<AvailabilityPriority>127<",
	                                    "<PartitionIOConfiguration",
	                                    "<MaximumVirtualIOSlots>64<",
	                                    "<PartitionMemoryConfiguration",
	                                    "<DesiredMemory>2048<",
	                                    "<MaximumMemory>2048<",
	                                    "<MinimumMemory>2048<",
	                                    "<PartitionName>inst-1<",
	                                    "<PartitionProcessorConfiguration",
	                                    "<HasDedicatedProcessors>false<",
	                                    "<SharedProcessorConfiguration",
	                                    "<DesiredProcessingUnits>0.20<",
	                                    "<DesiredVirtualProcessors>2<",
	                                    "<MaximumProcessingUnits>0.20<",
	                                    "<MaximumVirtualProcessors>2<",
	                                    "<MinimumProcessingUnits>0.20<",
	                                    "<MinimumVirtualProcessors>2<",
	                                    "<SharedProcessorPoolID>0<",
	                                    "<UncappedWeight>64<",
	                                    "<SharingMode>uncapped<",
	                                    "<PartitionType>AIX/Linux<",
	                                    "</LogicalPartition:LogicalPartition>",
	                                    NULL};
	assert_order(b, order);
	/* It is a LogicalPartition to our own parser too. */
	struct pvm_lpar_list *l = NULL;
	free(b);
	s.vcpus = 0;
	assert_null(pvm_build_lpar_create(&s, &err));
	assert_int_equal(err.code, PVM_EINVAL);
	s.vcpus = 1;
	s.name = "a-name-that-is-longer-than-31-chars";
	assert_null(pvm_build_lpar_create(&s, &err));
	assert_non_null(strstr(err.message, "31"));
	s.name = "x<&>";
	s.vcpus = 1;
	b = pvm_build_lpar_create(&s, &err);
	assert_non_null(strstr(b, "<PartitionName>x&lt;&amp;&gt;</PartitionName>"));
	assert_non_null(strstr(b, "<DesiredProcessingUnits>0.10<"));
	free(b);

	/* Update: the captured entry with new memory and vCPUs, whole and in place. */
	size_t len;
	char *x = fixture("lpar_ibmi.xml", &len);
	char *y = fixture("fake_lpar_feed.xml", &len);
	free(x);
	/* the first entry of the feed, as a single entry */
	char *es = strstr(y, "<entry>"), *ee = strstr(es, "</entry>") + 8;
	size_t elen = (size_t)(ee - es);
	struct pvm_lpar_spec u = {.memory_mb = 4096, .vcpus = 4, .name = "renamed"};
	b = pvm_build_lpar_update(es, elen, &u, &err);
	if (!b)
		fprintf(stderr, "update: %s\n", err.message);
	assert_non_null(b);
	assert_int_equal(pvm_parse_lpar(b, strlen(b), NULL, &l, &err), 0);
	assert_int_equal(l->items[0].memory_mb, 4096);
	assert_int_equal(l->items[0].vcpus, 4);
	assert_string_equal(l->items[0].name, "renamed");
	assert_true(l->items[0].proc_units > 0.39 && l->items[0].proc_units < 0.41);
	assert_int_equal(l->items[0].id, 26);
	pvm_lpar_list_free(l);
	/* kept: attributes and unrelated elements in their order */
	static const char *const kept[] = {"<AllowPerformanceDataCollection kb=\"CUD\"",
	                                   "<PartitionName kb=\"CUR\" kxe=\"false\">renamed<",
	                                   "<PartitionState", "<PartitionType", NULL};
	assert_order(b, kept);
	free(b);
	free(y);
}

static void test_pvm_views_build_job_request(void **state)
{
	(void)state;
	struct pvm_job_param p[] = {
	        {"operation", "shutdown"}, {"immediate", "true"}, {"cmd", "echo <a> && x ]]> y"}};
	char *b = pvm_build_job_request("PowerOff", "LogicalPartition", p, 3);
	static const char *const order[] = {"<JobRequest:JobRequest",
	                                    "<RequestedOperation",
	                                    "<OperationName kb=\"ROR\" kxe=\"false\">PowerOff<",
	                                    "<GroupName kb=\"ROR\" kxe=\"false\">LogicalPartition<",
	                                    "<JobParameters",
	                                    "<ParameterName kb=\"ROR\" kxe=\"false\">operation<",
	                                    ">shutdown<",
	                                    ">immediate<",
	                                    "<![CDATA[echo <a> && x ]]",
	                                    NULL};
	assert_order(b, order);
	/* "]]>" inside a value is split across two CDATA sections. */
	assert_non_null(strstr(b, "<![CDATA[echo <a> && x ]]]]><![CDATA[> y]]>"));
	assert_null(strstr(b, "<![CDATA[shutdown"));
	/* The structure matches the captured template: same elements in the same order. */
	size_t len;
	char *t = fixture("job_request_power_off.xml", &len);
	static const char *const tmpl[] = {"<RequestedOperation", "<OperationName", "<GroupName",
	                                   "<JobParameters", NULL};
	assert_order(t, tmpl);
	free(t);
	free(b);
}

static void test_pvm_views_build_others(void **state)
{
	(void)state;
	struct pvm_rest_error err;
	struct pvm_cna_spec cs = {.mac = "fa:d4:43:3e:d1:20",
	                          .pvid = 4094,
	                          .vswitch_href =
	                                  "https://h/rest/api/uom/ManagedSystem/x/VirtualSwitch/y"};
	char *b = pvm_build_cna(&cs, &err);
	static const char *const cna[] = {"<ClientNetworkAdapter:ClientNetworkAdapter",
	                                  "<UseNextAvailableSlotID>true<",
	                                  "<MACAddress>FAD4433ED120<",
	                                  "<PortVLANID>4094<",
	                                  "<TaggedVLANSupported>false<",
	                                  "<AssociatedVirtualSwitch><link href=",
	                                  NULL};
	assert_order(b, cna);
	/* the same relative order as the captured adapter */
	size_t len;
	char *f = fixture("fake_cna.xml", &len);
	static const char *const cap[] = {
	        "<VirtualSlotNumber",       "<MACAddress", "<PortVLANID", "<TaggedVLANSupported",
	        "<AssociatedVirtualSwitch", NULL};
	assert_order(f, cap);
	free(f);
	struct pvm_cna_list *cl = NULL;
	assert_int_equal(pvm_parse_cna(b, strlen(b), NULL, &cl, &err), 0);
	assert_string_equal(cl->items[0].mac, "FAD4433ED120");
	pvm_cna_list_free(cl);
	free(b);
	cs.mac = "zz";
	assert_null(pvm_build_cna(&cs, &err));

	/* volume group: add, then remove, a virtual disk */
	char *vg = fixture("fake_volume_group.xml", &len);
	struct pvm_vdisk_spec d = {.name = "boot_1234", .capacity_gb = 20};
	b = pvm_build_vg_add_vdisk(vg, len, &d, &err);
	assert_non_null(b);
	struct pvm_volume_group_list *gl = NULL;
	assert_int_equal(pvm_parse_volume_group(b, strlen(b), NULL, &gl, &err), 0);
	assert_int_equal(gl->items[0].n_vdisks, 2);
	assert_string_equal(gl->items[0].vdisks[1].name, "boot_1234");
	assert_true(gl->items[0].vdisks[1].capacity_gb == 20);
	pvm_volume_group_list_free(gl);
	static const char *const vdo[] = {"<DiskCapacity>20<", "<DiskLabel>None<",
	                                  "<DiskName>boot_1234<", NULL};
	assert_order(strstr(b, "boot_1234") - 200, vdo);
	char *b2 = pvm_build_vg_remove_vdisk(b, strlen(b), "asdf", &err);
	assert_int_equal(pvm_parse_volume_group(b2, strlen(b2), NULL, &gl, &err), 0);
	assert_int_equal(gl->items[0].n_vdisks, 1);
	assert_string_equal(gl->items[0].vdisks[0].name, "boot_1234");
	assert_string_equal(gl->items[0].media[0].name, "blank_media1");
	pvm_volume_group_list_free(gl);
	assert_null(pvm_build_vg_remove_vdisk(b2, strlen(b2), "nope", &err));
	assert_int_equal(err.code, PVM_ENOTFOUND);
	free(b2);
	free(b);
	d.name = "name-longer-than-15";
	assert_null(pvm_build_vg_add_vdisk(vg, len, &d, &err));
	free(vg);

	/* logical unit, in the order of the LU feed */
	struct pvm_lu_spec lu = {
	        .name = "boot_x", .capacity_gb = 10, .thin = true, .cloned_from = "296c0975"};
	b = pvm_build_logical_unit(&lu, &err);
	static const char *const luo[] = {
	        "<ThinDevice>true<",     "<UnitCapacity>10<", "<LogicalUnitType>VirtualIO_Disk<",
	        "<ClonedFrom>296c0975<", "<UnitName>boot_x<", NULL};
	assert_order(b, luo);
	f = fixture("lufeed.xml", &len);
	static const char *const luc[] = {"<ThinDevice", "<UnitCapacity", "<LogicalUnitType",
	                                  "<ClonedFrom", "<UnitName",     NULL};
	assert_order(f, luc);
	free(f);
	free(b);

	/* VIOS: add a mapping, then remove it */
	struct pvm_scsi_map_spec m = {.lpar_href = "https://h/rest/api/uom/LogicalPartition/"
	                                           "22222222-591D-4199-ADC2-8F854B2F471B",
	                              .server_lpar_id = 2,
	                              .kind = PVM_STORAGE_LU,
	                              .storage_name = "boot_x",
	                              .storage_udid = "27cf",
	                              .target_name = "vtscsi9"};
	b = pvm_build_vios_add_scsi(vios_with_maps, strlen(vios_with_maps), &m, &err);
	assert_non_null(b);
	struct pvm_vios_list *vl = NULL;
	assert_int_equal(pvm_parse_vios(b, strlen(b), NULL, &vl, &err), 0);
	assert_int_equal(vl->items[0].n_scsi_mappings, 3);
	assert_int_equal(vl->items[0].scsi_mappings[2].storage_kind, PVM_STORAGE_LU);
	assert_string_equal(vl->items[0].scsi_mappings[2].storage_name, "boot_x");
	assert_string_equal(vl->items[0].scsi_mappings[2].target_name, "vtscsi9");
	pvm_vios_list_free(vl);
	static const char *const mo[] = {"LogicalPartition/2222",
	                                 "<ClientAdapter",
	                                 "<ServerAdapter",
	                                 "<Storage>",
	                                 "<UnitName>boot_x<",
	                                 "<TargetDevice>",
	                                 NULL};
	assert_order(strstr(b, "<AssociatedLogicalPartition "
	                       "href=\"https://h/rest/api/uom/LogicalPartition/2222"),
	             mo);
	char *b3 = pvm_build_vios_remove_scsi(b, strlen(b), m.lpar_href, "boot_x", &err);
	assert_non_null(b3);
	assert_int_equal(pvm_parse_vios(b3, strlen(b3), NULL, &vl, &err), 0);
	assert_int_equal(vl->items[0].n_scsi_mappings, 2);
	pvm_vios_list_free(vl);
	free(b3);
	free(b);
	/* a VIOS read without the mapping group cannot take a mapping */
	f = fixture("fake_vios.xml", &len);
	b = pvm_build_vios_add_scsi(f, len, &m, &err);
	assert_non_null(b); /* the capture has an (empty) VirtualSCSIMappings */
	free(b);
	free(f);

	/* File, in the order of the captured File */
	struct pvm_file_spec fs = {.name = "boot_c3f7b1e7",
	                           .enum_type = "BROKERED_DISK_IMAGE",
	                           .size = 4550656,
	                           .vios_uuid = "14B854F7-42CE-4FF0-BD57-1D117054E701",
	                           .target_udid = "0300f8d6de00004b000000014a54555cd9.17",
	                           .sha256 = "ab"};
	b = pvm_build_file(&fs, &err);
	static const char *const fo[] = {"<File:File",
	                                 "<Filename>boot_c3f7b1e7<",
	                                 "<InternetMediaType>application/octet-stream<",
	                                 "<ExpectedFileSizeInBytes>4550656<",
	                                 "<FileEnumType>BROKERED_DISK_IMAGE<",
	                                 "<TargetVirtualIOServerUUID>",
	                                 "<TargetDeviceUniqueDeviceID>",
	                                 "<SHA256>ab<",
	                                 NULL};
	assert_order(b, fo);
	f = fixture("upload_file.xml", &len);
	static const char *const fc[] = {"<Filename",
	                                 "<InternetMediaType",
	                                 "<ExpectedFileSizeInBytes",
	                                 "<FileEnumType",
	                                 "<TargetVirtualIOServerUUID",
	                                 "<TargetDeviceUniqueDeviceID",
	                                 NULL};
	assert_order(f, fc);
	free(f);
	struct pvm_file_list *fl = NULL;
	assert_int_equal(pvm_parse_file(b, strlen(b), NULL, &fl, &err), 0);
	assert_int_equal(fl->items[0].expected_size, 4550656);
	pvm_file_list_free(fl);
	free(b);

	b = pvm_build_logon("hscroot", "p<w", false);
	assert_non_null(strstr(b, "<UserID>hscroot</UserID><Password>p&lt;w</Password>"));
	free(b);
	b = pvm_build_logon("u", NULL, true);
	assert_non_null(strstr(b, "<GenerateX-API-SessionFile>true<"));
	free(b);
}

static void test_pvm_views_error_space(void **state)
{
	(void)state;
	assert_int_equal(pvm_client_http_code(200, NULL), 0);
	assert_int_equal(pvm_client_http_code(400, NULL), PVM_EINVAL);
	assert_int_equal(pvm_client_http_code(401, NULL), -EACCES);
	assert_int_equal(pvm_client_http_code(404, NULL), PVM_ENOTFOUND);
	assert_int_equal(pvm_client_http_code(409, NULL), -EPROTO);
	assert_int_equal(pvm_client_http_code(412, NULL), -ESTALE);
	assert_int_equal(pvm_client_http_code(500, "HSCL3205 busy"), -EBUSY);
	assert_int_equal(pvm_client_http_code(500, "VIOS0014 x"), -EBUSY);
	assert_int_equal(pvm_client_http_code(500, "other"), -EAGAIN);
	assert_int_equal(pvm_client_http_code(503, NULL), -EAGAIN);
	int transient[] = {-EAGAIN, -EBUSY, -ESTALE, -ECONNREFUSED, -ECONNRESET, PVM_ETIMEDOUT};
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		assert_true(pvm_client_transient(transient[i]));
	int permanent[] = {PVM_EINVAL,  -EACCES,    PVM_ENOTFOUND, -EPROTO,    PVM_ECORRUPT,
	                   PVM_ECRYPTO, -EREMOTEIO, PVM_EPERM,     PVM_ETOOBIG};
	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		assert_false(pvm_client_transient(permanent[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pvm_views_lpar_feed),
	        cmocka_unit_test(test_pvm_views_lpar_ibmi_entry),
	        cmocka_unit_test(test_pvm_views_managed_system),
	        cmocka_unit_test(test_pvm_views_vios),
	        cmocka_unit_test(test_pvm_views_vios_mappings),
	        cmocka_unit_test(test_pvm_views_volume_groups),
	        cmocka_unit_test(test_pvm_views_ssp_tier_lu),
	        cmocka_unit_test(test_pvm_views_network),
	        cmocka_unit_test(test_pvm_views_jobs),
	        cmocka_unit_test(test_pvm_views_web_objects),
	        cmocka_unit_test(test_pvm_views_every_fixture),
	        cmocka_unit_test(test_pvm_views_missing_required),
	        cmocka_unit_test(test_pvm_views_pcm),
	        cmocka_unit_test(test_pvm_views_malformed),
	        cmocka_unit_test(test_pvm_views_no_entities),
	        cmocka_unit_test(test_pvm_views_build_lpar),
	        cmocka_unit_test(test_pvm_views_build_job_request),
	        cmocka_unit_test(test_pvm_views_build_others),
	        cmocka_unit_test(test_pvm_views_error_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
