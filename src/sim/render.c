/* render.c: the XML (and quick JSON) that pvmsim serves.
 *
 * DESIGN: written as text, in the shape of the captured HMC/NovaLink responses
 * (tests/fixtures/powervm): Atom feed and entry wrappers, per-entry <etag:etag>, objects
 * in the UOM namespace with a prefixed root ("LogicalPartition:LogicalPartition"), the
 * kb/kxe/ksv/schemaVersion attribute noise, and children in schema order. Only the fields
 * the simulator models vary; the rest are constant values copied from the captures.
 * Callers hold sim->lock (the objects are read).
 */
#include "sim.h"
#include "xmlw.h"

#include "pvm/util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- ManagedSystem ---- */

static const struct {
	const char *name;
	bool dflt;
	const char *ksv;
} caps[] = {
        {"ActiveLogicalPartitionMobilityCapable", true, NULL},
        {"ActiveMemoryExpansionCapable", true, NULL},
        {"BarrierSynchronizationRegisterCapable", false, NULL},
        {"CapacityOnDemandMemoryCapable", true, NULL},
        {"CapacityOnDemandProcessorCapable", true, NULL},
        {"HostChannelAdapterCapable", false, NULL},
        {"HugePageMemoryCapable", true, NULL},
        {"IBMiCapable", true, NULL},
        {"IBMiLogicalPartitionMobilityCapable", true, NULL},
        {"IBMiRestrictedIOModeCapable", true, NULL},
        {"InactiveLogicalPartitionMobilityCapable", true, NULL},
        {"LogicalPartitionProcessorCompatibilityModeCapable", true, NULL},
        {"PowerVMLogicalPartitionSimplifiedRemoteRestartCapable", true, "V1_2_0"},
        {"RedundantErrorPathReportingCapable", true, NULL},
        {"SharedProcessorPoolCapable", true, NULL},
        {"Telnet5250ApplicationCapable", true, NULL},
        {"VirtualFiberChannelCapable", true, NULL},
        {"VirtualSwitchCapable", true, NULL},
};

static void render_ms(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                      const struct sim_obj *o)
{
	const char *sv = "V1_3_0";
	obj_open(b, "ManagedSystem", SIM_NS_UOM, sv);
	obj_meta(b, o);
	if (c->groups & SIM_G_HYPERVISOR) {
		open_el(b, 1, "AssociatedIPLConfiguration", "group=\"Hypervisor\" " CUD, sv);
		el(b, 2, "PowerOffWhenLastLogicalPartitionIsShutdown", CUD, "false");
		close_el(b, 1, "AssociatedIPLConfiguration");
	}
	bool any = false;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *p = sim->objs[i];
		if (p->kind != SIM_LPAR || strcasecmp(p->parent, o->uuid) != 0)
			continue;
		if (!any)
			pvm_buf_add(b, "    <AssociatedLogicalPartitions " CUD ">\n");
		any = true;
		char path[128];
		snprintf(path, sizeof(path), "ManagedSystem/%s/LogicalPartition/%s", o->uuid,
		         p->uuid);
		ind(b, 2);
		pvm_buf_printf(b, "<link href=\"%s/rest/api/uom/%s\" rel=\"related\"/>\n", c->base,
		               path);
	}
	if (any)
		pvm_buf_add(b, "    </AssociatedLogicalPartitions>\n");
	else
		el(b, 1, "AssociatedLogicalPartitions", CUD, NULL);
	el(b, 1, "AssociatedReservedStorageDevicePool", CUD, NULL);
	open_el(b, 1, "AssociatedSystemCapabilities", CUD, sv);
	json_t *cj = json_object_get(o->props, "capabilities");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		json_t *v = json_object_get(cj, caps[i].name);
		bool val = json_is_boolean(v) ? json_is_true(v) : caps[i].dflt;
		char attrs[64];
		snprintf(attrs, sizeof(attrs), "%s%s%s" ROO, caps[i].ksv ? "ksv=\"" : "",
		         caps[i].ksv ? caps[i].ksv : "", caps[i].ksv ? "\" " : "");
		elb(b, 2, caps[i].name, attrs, val);
	}
	close_el(b, 1, "AssociatedSystemCapabilities");

	open_el(b, 1, "AssociatedSystemIOConfiguration", CUD, sv);
	eli(b, 2, "AvailableWWPNs", CUD, 65536);
	empty_block(b, 2, "HostChannelAdapters", CUD, sv);
	el(b, 2, "HostEthernetAdapters", CUD, NULL);
	empty_block(b, 2, "IOAdapters", CUD, sv);
	empty_block(b, 2, "IOBuses", CUD, sv);
	empty_block(b, 2, "IOSlots", CUD, sv);
	empty_block(b, 2, "SRIOVAdapters", CUD, sv);
	if (c->groups & SIM_G_SYSNET)
		empty_block(b, 2, "AssociatedSystemVirtualNetwork", "group=\"SystemNetwork\" " CUD,
		            sv);
	char wwpn[32];
	snprintf(wwpn, sizeof(wwpn), "%llu",
	         (unsigned long long)(0xC050760000000000ULL | (sim_hash_str(7, o->uuid) & 0xffff)
	                                                              << 16));
	el(b, 2, "WWPNPrefix", CUD, wwpn);
	close_el(b, 1, "AssociatedSystemIOConfiguration");

	int64_t avail_mem;
	double avail_units;
	sim_ms_available(sim, o, &avail_mem, &avail_units);
	int64_t mem = sim_int(o, "memory_mb", 0), region = sim_int(o, "memory_region_mb", 256);
	open_el(b, 1, "AssociatedSystemMemoryConfiguration", CUD, sv);
	eli(b, 2, "ConfigurableSystemMemory", ROR, mem);
	eli(b, 2, "CurrentAvailableSystemMemory", ROR, avail_mem);
	eli(b, 2, "CurrentLogicalMemoryBlockSize", ROR, region);
	eli(b, 2, "DefaultHardwarePageTableRatio", "kb=\"COR\" kxe=\"false\"", 6);
	eli(b, 2, "InstalledSystemMemory", ROR, mem);
	eli(b, 2, "MaximumMemoryPoolCount", ROR, 1);
	eli(b, 2, "MemoryRegionSize", CUD, region);
	eli(b, 2, "MemoryUsedByHypervisor", ROR, sim_int(o, "hypervisor_memory_mb", 0));
	eli(b, 2, "PendingAvailableSystemMemory", CUD, avail_mem);
	eli(b, 2, "PendingLogicalMemoryBlockSize", CUD, region);
	eli(b, 2, "PendingMemoryRegionSize", CUD, region);
	el(b, 2, "SharedMemoryPool", CUD, NULL);
	close_el(b, 1, "AssociatedSystemMemoryConfiguration");

	double units = sim_real(o, "processor_units", 0);
	open_el(b, 1, "AssociatedSystemProcessorConfiguration", CUD, sv);
	char t[32];
	snprintf(t, sizeof(t), "%g", units);
	el(b, 2, "ConfigurableSystemProcessorUnits", ROR, t);
	snprintf(t, sizeof(t), "%g", avail_units);
	el(b, 2, "CurrentAvailableSystemProcessorUnits", ROR, t);
	eli(b, 2, "CurrentMaximumProcessorsPerAIXOrLinuxPartition", ROR, 64);
	eli(b, 2, "CurrentMaximumProcessorsPerIBMiPartition", ROR, 64);
	eli(b, 2, "CurrentMaximumAllowedProcessorsPerPartition", ROR, 256);
	eli(b, 2, "CurrentMaximumProcessorsPerVirtualIOServerPartition", ROR, 64);
	eli(b, 2, "CurrentMaximumVirtualProcessorsPerAIXOrLinuxPartition", ROR, 64);
	eli(b, 2, "CurrentMaximumVirtualProcessorsPerIBMiPartition", ROR, 64);
	eli(b, 2, "CurrentMaximumVirtualProcessorsPerVirtualIOServerPartition", ROR, 64);
	snprintf(t, sizeof(t), "%g", units);
	el(b, 2, "InstalledSystemProcessorUnits", ROR, t);
	eli(b, 2, "MaximumAllowedVirtualProcessorsPerPartition", ROR, 256);
	el(b, 2, "MinimumProcessorUnitsPerVirtualProcessor", ROR, "0.05");
	snprintf(t, sizeof(t), "%g", avail_units);
	el(b, 2, "PendingAvailableSystemProcessorUnits", CUD, t);
	json_t *m;
	size_t i;
	json_array_foreach(json_object_get(o->props, "compat_modes"), i, m) el(
	        b, 2, "SupportedPartitionProcessorCompatibilityModes", ROR, json_string_value(m));
	el(b, 2, "SharedProcessorPool", CUD, NULL);
	close_el(b, 1, "AssociatedSystemProcessorConfiguration");

	empty_block(b, 1, "AssociatedSystemVirtualStorage", CUD, sv);
	open_el(b, 1, "MachineTypeModelAndSerialNumber", ROR, sv);
	el(b, 2, "MachineType", CUR, sim_str(o, "machine_type", ""));
	el(b, 2, "Model", CUR, sim_str(o, "model", ""));
	el(b, 2, "SerialNumber", CUR, sim_str(o, "serial", ""));
	close_el(b, 1, "MachineTypeModelAndSerialNumber");
	el(b, 1, "ManufacturingDefaultConfigurationEnabled", ROR, "false");
	eli(b, 1, "MaximumPartitions", CUD, sim_int(o, "max_partitions", 800));
	el(b, 1, "PrimaryIPAddress", CUR, sim_str(o, "ip", ""));
	el(b, 1, "SecondaryIPAddress", CUD, "169.254.3.147");
	el(b, 1, "State", ROR, sim_str(o, "state", "operating"));
	el(b, 1, "SystemName", CUR, sim_str(o, "name", ""));
	open_el(b, 1, "SystemMigrationInformation", ROR, sv);
	eli(b, 2, "MaximumInactiveMigrations", ROR, sim_int(o, "max_inactive_migrations", 16));
	eli(b, 2, "MaximumActiveMigrations", ROR, sim_int(o, "max_active_migrations", 16));
	eli(b, 2, "NumberOfInactiveMigrationsInProgress", ROR, 0);
	eli(b, 2, "NumberOfActiveMigrationsInProgress", ROR, 0);
	close_el(b, 1, "SystemMigrationInformation");
	el(b, 1, "ReferenceCode", "kb=\"ROO\" kxe=\"true\"", "00000000");
	bool nl = !c->hmc;
	elb(b, 1, "IsPowerVMManagementMaster", "ksv=\"V1_3_0\" " ROO, nl);
	elb(b, 1, "IsPowerVMManagementController", "ksv=\"V1_12_0\" " ROO, nl);
	elb(b, 1, "IsManagementPartitionPowerVMManagementMaster", "ksv=\"V1_3_0\" " ROO, nl);
	elb(b, 1, "IsHMCPowerVMManagementMaster", "ksv=\"V1_3_0\" " ROO, !nl);
	el(b, 1, "AssociatedGroups", "ksv=\"V1_2_0\" " ROO, NULL);
	el(b, 1, "AssociatedTasks", "ksv=\"V1_2_0\" " ROO, NULL);
	pvm_buf_add(b, "</ManagedSystem:ManagedSystem>\n");
}

/* ---- LogicalPartition and VirtualIOServer (the base partition, then VIOS extras) ---- */

static bool active(const char *state)
{
	return strcmp(state, "not activated") != 0 && strcmp(state, "error") != 0;
}

static void render_vios_extras(struct pvm_sim *sim, struct pvm_buf *b,
                               const struct sim_render_ctx *c, const struct sim_obj *o)
{
	const char *sv = "V1_2_0";
	el(b, 1, "APICapable", CUD, "true");
	el(b, 1, "ManagerPassthroughCapable", CUD, "true");
	if (c->groups & SIM_G_VIOS_STORAGE) {
		sim_render_vios_media(sim, b, c, o);
	}
	el(b, 1, "MoverServicePartition", CUD, "true");
	if (c->groups & SIM_G_VIOS_STORAGE) {
		open_el(b, 1, "PhysicalVolumes", "group=\"ViosStorage\" " CUD, sv);
		for (size_t i = 0; i < sim->nobjs; i++) {
			const struct sim_obj *pv = sim->objs[i];
			if (pv->kind != SIM_PV || strcasecmp(pv->parent, o->uuid) != 0)
				continue;
			bool fc = sim_bool(pv, "fc_backed", false);
			open_el(b, 2, "PhysicalVolume", "", sv);
			el(b, 3, "Description", CUD,
			   fc ? "MPIO IBM 2076 FC Disk" : "SAS RAID 0 Disk Array");
			el(b, 3, "LocationCode", ROR, sim_str(pv, "location", ""));
			el(b, 3, "ReservePolicy", CUD, "NoReserve");
			el(b, 3, "ReservePolicyAlgorithm", CUD, "Failover");
			el(b, 3, "UniqueDeviceID", ROR, sim_str(pv, "udid", ""));
			el(b, 3, "AvailableForUsage", CUD, "true");
			eli(b, 3, "VolumeCapacity", CUR, sim_int(pv, "capacity_mb", 0));
			el(b, 3, "VolumeName", CUR, sim_str(pv, "name", ""));
			el(b, 3, "VolumeState", ROR, "active");
			el(b, 3, "VolumeUniqueID", ROR, sim_str(pv, "udid", ""));
			elb(b, 3, "IsFibreChannelBacked", ROR, fc);
			close_el(b, 2, "PhysicalVolume");
		}
		close_el(b, 1, "PhysicalVolumes");
	}
	if (c->groups & SIM_G_VIOS_NETWORK)
		empty_block(b, 1, "SharedEthernetAdapters", "group=\"ViosNetwork\" " CUD, sv);
	if (c->groups & SIM_G_VIOS_STORAGE) {
		bool any = false;
		for (size_t i = 0; i < sim->nobjs; i++) {
			const struct sim_obj *vg = sim->objs[i];
			if (vg->kind != SIM_VG || strcasecmp(vg->parent, o->uuid) != 0)
				continue;
			if (!any)
				pvm_buf_add(b,
				            "    <StoragePools group=\"ViosStorage\" " CUD ">\n");
			any = true;
			char path[160];
			snprintf(path, sizeof(path), "VirtualIOServer/%s/VolumeGroup/%s", o->uuid,
			         vg->uuid);
			ind(b, 2);
			pvm_buf_printf(b, "<link href=\"%s/rest/api/uom/%s\" rel=\"related\"/>\n",
			               c->base, path);
		}
		if (any)
			pvm_buf_add(b, "    </StoragePools>\n");
		else
			el(b, 1, "StoragePools", "group=\"ViosStorage\" " CUD, NULL);
	}
	if (c->groups & SIM_G_VIOS_NETWORK)
		empty_block(b, 1, "TrunkAdapters", "group=\"ViosNetwork\" " CUD, sv);
	el(b, 1, "VirtualIOServerLicenseAccepted", CUD, "true");
	if (c->groups & SIM_G_VIOS_FC)
		empty_block(b, 1, "VirtualFibreChannelMappings", "group=\"ViosFCMapping\" " CUD,
		            sv);
	if (c->groups & SIM_G_VIOS_SCSI)
		sim_render_vios_scsi(sim, b, c, o);
}

static void render_partition(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                             const struct sim_obj *o)
{
	const char *sv = "V1_2_0";
	bool vios = o->kind == SIM_VIOS;
	const char *type = vios ? "VirtualIOServer" : "LogicalPartition";
	const char *state = sim_str(o, "state", "not activated");
	bool on = active(state);
	bool ded = sim_bool(o, "dedicated", false);
	char path[160];
	obj_open(b, type, SIM_NS_UOM, sv);
	obj_meta(b, o);
	el(b, 1, "AllowPerformanceDataCollection", CUD, "false");
	char prof[SIM_UUID_LEN];
	char seed[64];
	snprintf(seed, sizeof(seed), "profile:%s", o->uuid);
	sim_uuid_from(seed, false, prof);
	snprintf(path, sizeof(path), "%s/%s/LogicalPartitionProfile/%s", type, o->uuid, prof);
	link_el(b, 1, "AssociatedPartitionProfile", CUD, c->base, path);
	eli(b, 1, "AvailabilityPriority", UOD, sim_int(o, "avail_priority", 127));
	eli(b, 1, "CurrentAllocatedBarrierSynchronizationRegisterArrays", ROO, 0);
	el(b, 1, "CurrentProcessorCompatibilityMode", ROO,
	   on ? sim_str(o, "current_compat", "POWER8") : "default");
	el(b, 1, "CurrentProfileSync", CUD, "On");
	el(b, 1, "IsCallHomeEnabled", UOD, "false");
	el(b, 1, "IsConnectionMonitoringEnabled", UOD, "true");
	elb(b, 1, "IsOperationInProgress", ROR, sim_bool(o, "busy", false));
	el(b, 1, "IsRedundantErrorPathReportingEnabled", UOD, "false");
	el(b, 1, "IsTimeReferencePartition", UOD, "false");
	el(b, 1, "IsVirtualServiceAttentionLEDOn", ROR, "false");
	el(b, 1, "IsVirtualTrustedPlatformModuleEnabled", UOD, "false");
	el(b, 1, "KeylockPosition", CUD, "normal");
	char serial[16];
	snprintf(serial, sizeof(serial), "%02X%06llX", (unsigned)sim_int(o, "id", 0) & 0xff,
	         (unsigned long long)(sim_hash_str(3, o->uuid) & 0xffffff));
	el(b, 1, "LogicalSerialNumber", ROR, serial);
	el(b, 1, "OperatingSystemVersion", ROR, sim_str(o, "os_version", "Unknown"));
	bool rmc = strcmp(sim_str(o, "rmc_state", "inactive"), "active") == 0;
	open_el(b, 1, "PartitionCapabilities", ROR, sv);
	elb(b, 2, "DynamicLogicalPartitionIOCapable", ROR, rmc);
	elb(b, 2, "DynamicLogicalPartitionMemoryCapable", ROR, rmc);
	elb(b, 2, "DynamicLogicalPartitionProcessorCapable", ROR, rmc);
	el(b, 2, "InternalAndExternalIntrusionDetectionCapable", CUD, "false");
	elb(b, 2, "ResourceMonitoringControlOperatingSystemShutdownCapable", CUD, rmc);
	close_el(b, 1, "PartitionCapabilities");
	eli(b, 1, "PartitionID", COD, sim_int(o, "id", 0));

	open_el(b, 1, "PartitionIOConfiguration", CUD, sv);
	eli(b, 2, "MaximumVirtualIOSlots", CUD, sim_int(o, "max_slots", 64));
	empty_block(b, 2, "ProfileIOSlots", CUD, sv);
	eli(b, 2, "CurrentMaximumVirtualIOSlots", ROR, sim_int(o, "max_slots", 64));
	close_el(b, 1, "PartitionIOConfiguration");

	int64_t dmem = sim_int(o, "desired_mem", 0), mn = sim_int(o, "min_mem", 0),
	        mx = sim_int(o, "max_mem", 0);
	open_el(b, 1, "PartitionMemoryConfiguration", CUD, sv);
	el(b, 2, "ActiveMemoryExpansionEnabled", CUD, "false");
	el(b, 2, "ActiveMemorySharingEnabled", CUD, "false");
	eli(b, 2, "BarrierSynchronizationRegisterArrayCount", CUD, 0);
	eli(b, 2, "DesiredHugePageCount", CUD, 0);
	eli(b, 2, "DesiredMemory", CUD, dmem);
	el(b, 2, "ExpansionFactor", CUD, "0.0");
	eli(b, 2, "HardwarePageTableRatio", CUD, 6);
	eli(b, 2, "MaximumHugePageCount", CUD, 0);
	eli(b, 2, "MaximumMemory", CUD, mx);
	eli(b, 2, "MinimumHugePageCount", CUD, 0);
	eli(b, 2, "MinimumMemory", CUD, mn);
	eli(b, 2, "CurrentBarrierSynchronizationRegisterArrays", ROR, 0);
	el(b, 2, "CurrentExpansionFactor", ROR, "0.0");
	eli(b, 2, "CurrentHardwarePageTableRatio", ROR, 6);
	eli(b, 2, "CurrentHugePageCount", ROR, 0);
	eli(b, 2, "CurrentMaximumHugePageCount", ROR, 0);
	eli(b, 2, "CurrentMaximumMemory", ROR, on ? mx : 0);
	eli(b, 2, "CurrentMemory", ROR, on ? dmem : 0);
	eli(b, 2, "CurrentMinimumHugePageCount", ROR, 0);
	eli(b, 2, "CurrentMinimumMemory", ROR, on ? mn : 0);
	el(b, 2, "MemoryExpansionEnabled", ROR, "false");
	el(b, 2, "RedundantErrorPathReportingEnabled", ROR, "false");
	eli(b, 2, "RuntimeHugePageCount", ROR, 0);
	eli(b, 2, "RuntimeMemory", ROR, on ? dmem : 0);
	eli(b, 2, "RuntimeMinimumMemory", ROR, on ? mn : 0);
	el(b, 2, "SharedMemoryEnabled", CUD, "false");
	close_el(b, 1, "PartitionMemoryConfiguration");

	el(b, 1, "PartitionName", CUR, sim_str(o, "name", ""));

	long long dv = sim_int(o, "desired_vcpus", 1), minv = sim_int(o, "min_vcpus", 1),
	          maxv = sim_int(o, "max_vcpus", 1);
	double du = sim_real(o, "desired_units", 0.1), minu = sim_real(o, "min_units", 0.1),
	       maxu = sim_real(o, "max_units", 0.1);
	open_el(b, 1, "PartitionProcessorConfiguration", CUD, sv);
	if (ded) {
		open_el(b, 2, "DedicatedProcessorConfiguration", CUD, sv);
		eli(b, 3, "DesiredProcessors", CUD, dv);
		eli(b, 3, "MaximumProcessors", CUD, maxv);
		eli(b, 3, "MinimumProcessors", CUD, minv);
		close_el(b, 2, "DedicatedProcessorConfiguration");
	}
	elb(b, 2, "HasDedicatedProcessors", CUD, ded);
	if (!ded) {
		open_el(b, 2, "SharedProcessorConfiguration", CUD, sv);
		elu(b, 3, "DesiredProcessingUnits", CUD, du);
		eli(b, 3, "DesiredVirtualProcessors", CUD, dv);
		elu(b, 3, "MaximumProcessingUnits", CUD, maxu);
		eli(b, 3, "MaximumVirtualProcessors", CUD, maxv);
		elu(b, 3, "MinimumProcessingUnits", CUD, minu);
		eli(b, 3, "MinimumVirtualProcessors", CUD, minv);
		eli(b, 3, "SharedProcessorPoolID", CUD, sim_int(o, "pool_id", 0));
		eli(b, 3, "UncappedWeight", CUD, sim_int(o, "weight", 128));
		close_el(b, 2, "SharedProcessorConfiguration");
	}
	el(b, 2, "SharingMode", CUD,
	   sim_str(o, "sharing_mode", ded ? "keep idle procs" : "uncapped"));
	elb(b, 2, "CurrentHasDedicatedProcessors", ROR, ded);
	el(b, 2, "CurrentSharingMode", ROR,
	   sim_str(o, "sharing_mode", ded ? "keep idle procs" : "uncapped"));
	if (ded) {
		open_el(b, 2, "CurrentDedicatedProcessorConfiguration", ROR, sv);
		eli(b, 3, "CurrentMaximumProcessors", ROR, on ? maxv : 0);
		eli(b, 3, "CurrentMinimumProcessors", ROR, on ? minv : 0);
		eli(b, 3, "CurrentProcessors", ROR, on ? dv : 0);
		eli(b, 3, "RunProcessors", ROR, on ? dv : 0);
		close_el(b, 2, "CurrentDedicatedProcessorConfiguration");
	}
	elb(b, 2, "RuntimeHasDedicatedProcessors", ROR, ded);
	if (!ded) {
		open_el(b, 2, "CurrentSharedProcessorConfiguration", ROR, sv);
		eli(b, 3, "AllocatedVirtualProcessors", ROR, on ? dv : 0);
		elu(b, 3, "CurrentMaximumProcessingUnits", ROR, on ? maxu : 0);
		elu(b, 3, "CurrentMinimumProcessingUnits", ROR, on ? minu : 0);
		elu(b, 3, "CurrentProcessingUnits", ROR, on ? du : 0);
		eli(b, 3, "CurrentSharedProcessorPoolID", ROR, sim_int(o, "pool_id", 0));
		eli(b, 3, "CurrentUncappedWeight", ROR, sim_int(o, "weight", 128));
		eli(b, 3, "CurrentMinimumVirtualProcessors", ROR, on ? minv : 0);
		eli(b, 3, "CurrentMaximumVirtualProcessors", ROR, on ? maxv : 0);
		elu(b, 3, "RuntimeProcessingUnits", ROR, on ? du : 0);
		eli(b, 3, "RuntimeUncappedWeight", ROR, sim_int(o, "weight", 128));
		close_el(b, 2, "CurrentSharedProcessorConfiguration");
	}
	close_el(b, 1, "PartitionProcessorConfiguration");

	pvm_buf_add(b, "    <PartitionProfiles " CUD ">\n");
	ind(b, 2);
	pvm_buf_printf(b, "<link href=\"%s/rest/api/uom/%s\" rel=\"related\"/>\n", c->base, path);
	pvm_buf_add(b, "    </PartitionProfiles>\n");
	el(b, 1, "PartitionState", ROO, state);
	el(b, 1, "PartitionType", COD, sim_str(o, "type", "AIX/Linux"));
	el(b, 1, "PartitionUUID", ROO, o->uuid);
	el(b, 1, "PendingProcessorCompatibilityMode", CUD, sim_str(o, "compat_mode", "default"));
	char pool[SIM_UUID_LEN];
	snprintf(seed, sizeof(seed), "pool0:%s", o->parent);
	sim_uuid_from(seed, false, pool);
	snprintf(path, sizeof(path), "ManagedSystem/%s/SharedProcessorPool/%s", o->parent, pool);
	link_el(b, 1, "ProcessorPool", CUD, c->base, path);
	eli(b, 1, "ProgressPartitionDataRemaining", ROR, 0);
	eli(b, 1, "ProgressPartitionDataTotal", ROR, 0);
	el(b, 1, "ResourceMonitoringControlState", ROR, sim_str(o, "rmc_state", "inactive"));
	if (rmc) {
		char ip[32];
		snprintf(ip, sizeof(ip), "127.1.%u.%u", (unsigned)(sim_hash_str(5, o->uuid) & 0xff),
		         (unsigned)sim_int(o, "id", 0) & 0xff);
		el(b, 1, "ResourceMonitoringIPAddress", ROR, ip);
	}
	snprintf(path, sizeof(path), "ManagedSystem/%s", o->parent);
	link_el(b, 1, "AssociatedManagedSystem", CUD, c->base, path);
	if (!vios)
		sim_render_lpar_cnas(sim, b, c, o);
	empty_block(b, 1, "HostEthernetAdapterLogicalPorts", CUD, sv);
	char macp[32];
	snprintf(macp, sizeof(macp), "%llu",
	         (unsigned long long)((sim_hash_str(11, o->parent) & 0xfeffffffULL) << 16));
	el(b, 1, "MACAddressPrefix", ROR, macp);
	el(b, 1, "IsServicePartition", CUD, "false");
	el(b, 1, "ReferenceCode", "kb=\"ROO\" kxe=\"true\"", sim_str(o, "ref_code", ""));
	if (sim_bool(o, "is_mgmt", false))
		el(b, 1, "IsManagementPartition", ROR, "true");
	else if (!vios)
		el(b, 1, "IsManagementPartition", ROR, "false");
	if (vios) {
		el(b, 1, "PowerOnWithHypervisor", "ksv=\"V1_2_0\" " CUD, "true");
		render_vios_extras(sim, b, c, o);
		pvm_buf_add(b, "</VirtualIOServer:VirtualIOServer>\n");
		return;
	}
	el(b, 1, "RemoteRestartCapable", CUA, "false");
	elb(b, 1, "SimplifiedRemoteRestartCapable", "ksv=\"V1_2_0\" " CUD,
	    sim_bool(o, "srr", false));
	el(b, 1, "HasDedicatedProcessorsForMigration", ROR, ded ? "true" : "false");
	el(b, 1, "SuspendCapable", CUD, "false");
	el(b, 1, "MigrationState", ROR, sim_str(o, "migration_state", "Not_Migrating"));
	el(b, 1, "RemoteRestartState", ROR, "Invalid");
	el(b, 1, "PowerManagementMode", CUR, "None");
	el(b, 1, "VirtualFibreChannelClientAdapters", CUR, NULL);
	el(b, 1, "VirtualSCSIClientAdapters", CUR, NULL);
	pvm_buf_add(b, "</LogicalPartition:LogicalPartition>\n");
}

static void render_vswitch(struct pvm_buf *b, const struct sim_obj *o)
{
	obj_open(b, "VirtualSwitch", SIM_NS_UOM, "V1_2_0");
	obj_meta(b, o);
	eli(b, 1, "SwitchID", ROR, sim_int(o, "switch_id", 0));
	el(b, 1, "SwitchMode", CUD, sim_str(o, "mode", "Veb"));
	el(b, 1, "SwitchName", CUD, sim_str(o, "name", ""));
	el(b, 1, "VirtualNetworks", CUD, NULL);
	pvm_buf_add(b, "</VirtualSwitch:VirtualSwitch>\n");
}

void sim_render_entry(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                      const struct sim_obj *o, bool in_feed)
{
	const char *type = sim_kind_name(o->kind);
	char t[32];
	pvm_fmt_time(o->created_ms, t, sizeof(t));
	const char *p = in_feed ? "        " : "    "; /* children of <entry> */
	if (in_feed)
		pvm_buf_add(b, "    <entry>\n");
	else
		pvm_buf_add(b, "<entry " ATOM_ROOT_ATTRS ">\n");
	pvm_buf_printf(b, "%s<id>%s</id>\n%s<title>%s</title>\n%s<published>%s</published>\n", p,
	               o->uuid, p, type, p, t);
	pvm_buf_printf(b, "%s<link rel=\"SELF\" href=\"%s/%s", p, c->base, c->self_prefix);
	if (in_feed)
		pvm_buf_printf(b, "/%s", o->uuid);
	if (c->group_q) {
		pvm_buf_add(b, "?group=");
		pvm_buf_xml(b, c->group_q);
	}
	pvm_buf_add(b, "\"/>\n");
	if (c->hmc)
		pvm_buf_printf(b,
		               "%s<link rel=\"MANAGEMENT_CONSOLE\" "
		               "href=\"%s/rest/api/uom/ManagementConsole/%s\"/>\n",
		               p, c->base, c->console_uuid);
	pvm_buf_printf(b, "%s<author>\n%s    <name>" GENERATOR "</name>\n%s</author>\n", p, p, p);
	pvm_buf_printf(b,
	               "%s<etag:etag xmlns:etag=\"" SIM_NS_UOM "\" xmlns=\"" SIM_NS_UOM
	               "\">%d</etag:etag>\n",
	               p, (int)sim_etag(o, c->groups));
	pvm_buf_printf(b, "%s<content type=\"application/vnd.ibm.powervm.uom+xml; type=%s\">\n", p,
	               type);
	switch (o->kind) {
	case SIM_MS:
		render_ms(sim, b, c, o);
		break;
	case SIM_LPAR:
	case SIM_VIOS:
		render_partition(sim, b, c, o);
		break;
	case SIM_VSWITCH:
		render_vswitch(b, o);
		break;
	default:
		sim_render_storage(sim, b, c, o);
		break;
	}
	pvm_buf_printf(b, "%s</content>\n", p);
	pvm_buf_add(b, in_feed ? "    </entry>\n" : "</entry>\n");
}

void sim_render_feed_open(struct pvm_buf *b, const struct sim_render_ctx *c, const char *feed_path)
{
	char id[SIM_UUID_LEN], t[32];
	sim_uuid_from(feed_path, false, id);
	pvm_fmt_time(pvm_now_ms(), t, sizeof(t));
	pvm_buf_printf(b,
	               "<feed " ATOM_ROOT_ATTRS ">\n    <id>%s</id>\n    <updated>%s</updated>\n",
	               id, t);
	pvm_buf_printf(b, "    <link rel=\"SELF\" href=\"%s/%s", c->base, c->self_prefix);
	if (c->group_q) {
		pvm_buf_add(b, "?group=");
		pvm_buf_xml(b, c->group_q);
	}
	pvm_buf_add(b, "\"/>\n");
	if (c->hmc)
		pvm_buf_printf(b,
		               "    <link rel=\"MANAGEMENT_CONSOLE\" "
		               "href=\"%s/rest/api/uom/ManagementConsole/%s\"/>\n",
		               c->base, c->console_uuid);
	pvm_buf_add(b, "    <generator>" GENERATOR "</generator>\n");
}

void sim_render_feed_close(struct pvm_buf *b)
{
	pvm_buf_add(b, "</feed>\n");
}

static void web_open(struct pvm_buf *b, const char *type, const char *title_id, const char *self)
{
	char t[32];
	pvm_fmt_time(pvm_now_ms(), t, sizeof(t));
	pvm_buf_printf(b,
	               "<entry " ATOM_ROOT_ATTRS ">\n    <id>%s</id>\n    <title>%s</title>\n"
	               "    <published>%s</published>\n",
	               title_id, type, t);
	if (self)
		pvm_buf_printf(b, "    <link rel=\"SELF\" href=\"%s\"/>\n", self);
	pvm_buf_add(b, "    <author>\n        <name>" GENERATOR "</name>\n    </author>\n");
	pvm_buf_printf(b, "    <content type=\"application/vnd.ibm.powervm.web+xml; type=%s\">\n",
	               type);
	obj_open(b, type, SIM_NS_WEB, "V1_0");
	meta_empty(b, 1);
}

static void web_close(struct pvm_buf *b, const char *type)
{
	pvm_buf_printf(b, "</%s:%s>\n    </content>\n</entry>\n", type, type);
}

void sim_render_error(struct pvm_buf *b, int status, const char *uri, const char *reason,
                      const char *msg)
{
	char id[SIM_UUID_LEN];
	sim_uuid_random(id);
	web_open(b, "HttpErrorResponse", id, NULL);
	eli(b, 1, "HTTPStatus", ROR, status);
	el(b, 1, "RequestURI", ROR, uri);
	el(b, 1, "ReasonCode", ROR, reason);
	el(b, 1, "Message", "kb=\"ROO\" kxe=\"false\"", msg);
	el(b, 1, "RequestBody", "kb=\"ROO\" kxe=\"false\"", NULL);
	el(b, 1, "RequestHeaders", "kb=\"ROO\" kxe=\"false\"", NULL);
	web_close(b, "HttpErrorResponse");
}

static void job_request_body(struct pvm_buf *b, int n, const char *op, const char *group,
                             json_t *params)
{
	open_el(b, n, "RequestedOperation", "kb=\"CUR\" kxe=\"false\"", "V1_0");
	el(b, n + 1, "OperationName", ROR, op);
	el(b, n + 1, "GroupName", ROR, group);
	close_el(b, n, "RequestedOperation");
	open_el(b, n, "JobParameters", "kb=\"CUR\" kxe=\"false\"", "V1_0");
	json_t *p;
	size_t i;
	json_array_foreach(params, i, p)
	{
		open_el(b, n + 1, "JobParameter", "", "V1_0");
		el(b, n + 2, "ParameterName", ROR, json_string_value(json_array_get(p, 0)));
		el(b, n + 2, "ParameterValue", "kb=\"CUR\" kxe=\"false\"",
		   json_string_value(json_array_get(p, 1)));
		close_el(b, n + 1, "JobParameter");
	}
	close_el(b, n, "JobParameters");
}

void sim_render_job_request(struct pvm_buf *b, const char *op, const char *group)
{
	char id[SIM_UUID_LEN], seed[128];
	snprintf(seed, sizeof(seed), "jobrequest:%s:%s", group, op);
	sim_uuid_from(seed, false, id);
	web_open(b, "JobRequest", id, NULL);
	job_request_body(b, 1, op, group, NULL);
	web_close(b, "JobRequest");
}

void sim_render_job_response(struct pvm_buf *b, const char *base, const struct sim_job *j)
{
	char id[SIM_UUID_LEN], seed[64], self[256];
	snprintf(seed, sizeof(seed), "job:%llu", (unsigned long long)j->id);
	sim_uuid_from(seed, false, id);
	snprintf(self, sizeof(self), "%s/rest/api/uom/jobs/%llu", base, (unsigned long long)j->id);
	web_open(b, "JobResponse", id, self);
	ind(b, 1);
	pvm_buf_add(b, "<RequestURL " ROR " href=\"");
	pvm_buf_xml(b, j->request_url);
	pvm_buf_add(b,
	            "\" rel=\"via\" title=\"The URL to which the JobRequest was submitted.\"/>\n");
	el(b, 1, "TargetUuid", ROR, j->target);
	eli(b, 1, "JobID", ROR, (long long)j->id);
	eli(b, 1, "TimeStarted", ROR, j->started_ms);
	eli(b, 1, "TimeCompleted", ROR, j->completed_ms);
	el(b, 1, "Status", ROR, sim_job_status_name(j->status));
	if (j->status == SIM_JOB_FAILED_BEFORE_COMPLETION) {
		open_el(b, 1, "ResponseException", ROR, "V1_0");
		el(b, 2, "Message", ROR, j->fail_msg ? j->fail_msg : "Job failed");
		el(b, 2, "StackTrace", ROR, NULL);
		close_el(b, 1, "ResponseException");
	}
	open_el(b, 1, "JobRequestInstance", ROR, "V1_0");
	job_request_body(b, 2, j->op, j->group, j->params);
	close_el(b, 1, "JobRequestInstance");
	open_el(b, 1, "Progress", "kb=\"ROO\" kxe=\"false\"", "V1_0");
	if (j->status != SIM_JOB_NOT_STARTED) {
		open_el(b, 2, "CompletedTasks", ROR, "V1_0");
		open_el(b, 3, "NLSMessage", "", "V1_0");
		el(b, 4, "UntranslatedMessage", ROR, "Started");
		el(b, 4, "MessageKey", ROR, "STARTED");
		close_el(b, 3, "NLSMessage");
		if (sim_job_terminal(j)) {
			open_el(b, 3, "NLSMessage", "", "V1_0");
			el(b, 4, "UntranslatedMessage", ROR,
			   j->status == SIM_JOB_COMPLETED_OK ? "Complete" : "Completed with error");
			el(b, 4, "MessageKey", ROR, "COMPLETE");
			close_el(b, 3, "NLSMessage");
		}
		close_el(b, 2, "CompletedTasks");
		el(b, 2, "LinearProgress", ROR, sim_job_terminal(j) ? "1.0" : "0.5");
	}
	close_el(b, 1, "Progress");
	open_el(b, 1, "Results", ROR, "V1_0");
	if (sim_job_terminal(j) && j->status != SIM_JOB_FAILED_BEFORE_COMPLETION) {
		bool ok = j->status == SIM_JOB_COMPLETED_OK;
		open_el(b, 2, "JobParameter", "", "V1_0");
		el(b, 3, "ParameterName", ROR, "returnCode");
		el(b, 3, "ParameterValue", "kb=\"CUR\" kxe=\"false\"", ok ? "0" : "1");
		close_el(b, 2, "JobParameter");
		if (!ok) {
			open_el(b, 2, "JobParameter", "", "V1_0");
			el(b, 3, "ParameterName", ROR, "result");
			el(b, 3, "ParameterValue", "kb=\"CUR\" kxe=\"false\"",
			   j->fail_msg ? j->fail_msg : "failed");
			close_el(b, 2, "JobParameter");
		}
	}
	close_el(b, 1, "Results");
	web_close(b, "JobResponse");
}

void sim_render_logon(struct pvm_buf *b, const char *token, const char *file)
{
	pvm_buf_add(b, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
	               "<LogonResponse xmlns=\"" SIM_NS_WEB "\" schemaVersion=\"V1_1_0\">\n"
	               "    <Metadata>\n        <Atom/>\n    </Metadata>\n");
	if (file)
		el(b, 1, "X-API-SessionFile", ROR, file);
	else
		el(b, 1, "X-API-Session", ROR, token);
	pvm_buf_add(b, "</LogonResponse>\n");
}

void sim_render_event(struct pvm_buf *b, const char *base, const struct sim_event *e)
{
	char id[SIM_UUID_LEN], seed[64], t[32];
	snprintf(seed, sizeof(seed), "event:%llu:%lld", (unsigned long long)e->id,
	         (long long)e->ms);
	sim_uuid_from(seed, false, id);
	pvm_fmt_time(e->ms, t, sizeof(t));
	pvm_buf_printf(
	        b,
	        "    <entry>\n        <id>%s</id>\n        <title>Event</title>\n"
	        "        <published>%s</published>\n"
	        "        <link rel=\"SELF\" href=\"%s/rest/api/uom/Event/%s\"/>\n"
	        "        <author>\n            <name>" GENERATOR "</name>\n        </author>\n"
	        "        <etag:etag xmlns:etag=\"" SIM_NS_UOM "\" xmlns=\"" SIM_NS_UOM
	        "\">%d</etag:etag>\n"
	        "        <content type=\"application/vnd.ibm.powervm.uom+xml; type=Event\">\n",
	        id, t, base, id, (int)(int32_t)(sim_mix64(e->id) >> 33));
	pvm_buf_printf(
	        b,
	        "<Event:Event xmlns:Event=\"" SIM_NS_UOM "\" xmlns=\"" SIM_NS_UOM
	        "\" schemaVersion=\"V1_1_0\">\n    <Metadata>\n        <Atom>\n"
	        "            <AtomID>%s</AtomID>\n            <AtomCreated>%lld</AtomCreated>\n"
	        "        </Atom>\n    </Metadata>\n",
	        id, (long long)e->ms);
	el(b, 1, "EventType", ROR, e->type);
	eli(b, 1, "EventID", ROR, (long long)e->id);
	if (e->data && *e->data) {
		char uri[512];
		snprintf(uri, sizeof(uri), "%s/rest/api/uom/%s", base, e->data);
		el(b, 1, "EventData", ROR, uri);
	} else {
		el(b, 1, "EventData", ROR, NULL);
	}
	el(b, 1, "EventDetail", ROR, e->detail);
	pvm_buf_add(b, "</Event:Event>\n        </content>\n    </entry>\n");
}

json_t *sim_quick(struct pvm_sim *sim, const struct sim_obj *o)
{
	(void)sim;
	if (o->kind != SIM_LPAR && o->kind != SIM_VIOS)
		return NULL;
	const char *state = sim_str(o, "state", "not activated");
	bool on = active(state);
	bool ded = sim_bool(o, "dedicated", false);
	return json_pack(
	        "{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:s, s:s, s:b, s:s,"
	        " s:b}",
	        "UUID", o->uuid, "PartitionName", sim_str(o, "name", ""), "PartitionID",
	        (json_int_t)sim_int(o, "id", 0), "PartitionState", state, "PartitionType",
	        sim_str(o, "type", "AIX/Linux"), "RMCState", sim_str(o, "rmc_state", "inactive"),
	        "MigrationState", sim_str(o, "migration_state", "Not_Migrating"), "CurrentMemory",
	        (json_int_t)(on ? sim_int(o, "desired_mem", 0) : 0), "CurrentProcessors",
	        (json_int_t)(on ? sim_int(o, "desired_vcpus", 0) : 0), "CurrentProcessingUnits",
	        on ? (ded ? (double)sim_int(o, "desired_vcpus", 0)
	                  : sim_real(o, "desired_units", 0))
	           : 0.0,
	        "OperatingSystemVersion", sim_str(o, "os_version", "Unknown"), "ReferenceCode",
	        sim_str(o, "ref_code", ""), "IsManagementPartition", sim_bool(o, "is_mgmt", false),
	        "AssociatedManagedSystem", o->parent, "IsOperationInProgress",
	        sim_bool(o, "busy", false));
}
