#!/usr/bin/python3
"""Baseline of `scripts/bench client`: the same feeds parsed with Debian's python3-lxml,
reading the same fields as the C typed views (what IBM's Python client does underneath).
Usage: bench_client_lxml.py RUNS FILE... ; prints one line per file:
  NAME bytes entries median_seconds_per_parse
"""
import statistics
import sys
import time

from lxml import etree

A = '{http://www.w3.org/2005/Atom}'
U = '{http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/}'


def t(e, path):
    if e is None:
        return None
    x = e.find(path)
    return x.text.strip() if x is not None and x.text is not None else None


def i(e, path):
    v = t(e, path)
    return int(v) if v else -1


def f(e, path):
    v = t(e, path)
    return float(v) if v else 0.0


def b(e, path):
    v = t(e, path)
    return v is not None and v.lower() == 'true'


def p(*parts):
    return '/'.join(U + x for x in parts)


def meta(entry, obj):
    etag = entry.find(U + 'etag')
    href = None
    for l in entry.findall(A + 'link'):
        if l.get('rel') == 'SELF':
            href = l.get('href')
            break
    return (t(entry, A + 'id'), etag.text.strip() if etag is not None else None, href)


def lpar(o):
    mem = o.find(U + 'PartitionMemoryConfiguration')
    pc = o.find(U + 'PartitionProcessorConfiguration')
    sh = pc.find(U + 'SharedProcessorConfiguration') if pc is not None else None
    return (t(o, U + 'PartitionName'), i(o, U + 'PartitionID'), t(o, U + 'PartitionUUID'),
            t(o, U + 'PartitionState'), t(o, U + 'PartitionType'),
            i(mem, U + 'DesiredMemory'), i(mem, U + 'MinimumMemory'),
            i(mem, U + 'MaximumMemory'), i(mem, U + 'CurrentMemory'),
            b(pc, U + 'HasDedicatedProcessors'), t(pc, U + 'SharingMode'),
            i(sh, U + 'DesiredVirtualProcessors'), i(sh, U + 'MinimumVirtualProcessors'),
            i(sh, U + 'MaximumVirtualProcessors'), f(sh, U + 'DesiredProcessingUnits'),
            f(sh, U + 'MinimumProcessingUnits'), f(sh, U + 'MaximumProcessingUnits'),
            i(sh, U + 'UncappedWeight'), t(o, U + 'ResourceMonitoringControlState'),
            t(o, U + 'MigrationState'), b(o, U + 'IsManagementPartition'),
            t(o, U + 'CurrentProcessorCompatibilityMode'), t(o, U + 'OperatingSystemVersion'))


def ms(o):
    mt = o.find(U + 'MachineTypeModelAndSerialNumber')
    mem = o.find(U + 'AssociatedSystemMemoryConfiguration')
    pr = o.find(U + 'AssociatedSystemProcessorConfiguration')
    caps = o.find(U + 'AssociatedSystemCapabilities')
    mig = o.find(U + 'SystemMigrationInformation')
    return (t(o, U + 'SystemName'), t(mt, U + 'MachineType'), t(mt, U + 'Model'),
            t(mt, U + 'SerialNumber'), t(o, U + 'State'),
            i(mem, U + 'ConfigurableSystemMemory'), i(mem, U + 'CurrentAvailableSystemMemory'),
            i(mem, U + 'MemoryRegionSize'), f(pr, U + 'ConfigurableSystemProcessorUnits'),
            f(pr, U + 'CurrentAvailableSystemProcessorUnits'),
            [x.text for x in pr.findall(U + 'SupportedPartitionProcessorCompatibilityModes')],
            b(caps, U + 'ActiveLogicalPartitionMobilityCapable'),
            b(caps, U + 'InactiveLogicalPartitionMobilityCapable'),
            i(mig, U + 'MaximumActiveMigrations'), i(mig, U + 'MaximumInactiveMigrations'),
            i(mig, U + 'NumberOfActiveMigrationsInProgress'),
            i(mig, U + 'NumberOfInactiveMigrationsInProgress'))


def pv(o):
    return (t(o, U + 'VolumeName'), t(o, U + 'UniqueDeviceID'), i(o, U + 'VolumeCapacity'),
            t(o, U + 'Description'), b(o, U + 'IsFibreChannelBacked'))


def repo(r):
    om = r.find(U + 'OpticalMedia')
    return (t(r, U + 'RepositoryName'), f(r, U + 'RepositorySize'),
            [(t(m, U + 'MediaName'), t(m, U + 'MediaUDID'), t(m, U + 'MountType'),
              f(m, U + 'Size')) for m in (om.findall(U + 'VirtualOpticalMedia')
                                          if om is not None else [])])


def vg(o):
    vds = o.find(U + 'VirtualDisks')
    r = o.find(p('MediaRepositories', 'VirtualMediaRepository'))
    pvs = o.find(U + 'PhysicalVolumes')
    return (t(o, U + 'GroupName'), f(o, U + 'GroupCapacity'), f(o, U + 'AvailableSize'),
            f(o, U + 'FreeSpace'), t(o, U + 'GroupSerialID'), t(o, U + 'UniqueDeviceID'),
            [(t(d, U + 'DiskName'), f(d, U + 'DiskCapacity'), t(d, U + 'DiskLabel'),
              t(d, U + 'UniqueDeviceID')) for d in (vds.findall(U + 'VirtualDisk')
                                                    if vds is not None else [])],
            repo(r) if r is not None else None,
            [pv(x) for x in (pvs.findall(U + 'PhysicalVolume') if pvs is not None else [])])


def lu(o):
    return (t(o, U + 'UnitName'), t(o, U + 'UniqueDeviceID'), f(o, U + 'UnitCapacity'),
            t(o, U + 'LogicalUnitType'), b(o, U + 'ThinDevice'), b(o, U + 'InUse'),
            t(o, U + 'ClonedFrom'))


def adapter(a):
    return (t(a, U + 'AdapterType'), i(a, U + 'LocalPartitionID'),
            i(a, U + 'VirtualSlotNumber'), t(a, U + 'AdapterName'), t(a, U + 'LocationCode'))


def vios(o):
    sp = o.find(U + 'StoragePools')
    repos = o.find(U + 'MediaRepositories')
    pvs = o.find(U + 'PhysicalVolumes')
    sm = o.find(U + 'VirtualSCSIMappings')
    fm = o.find(U + 'VirtualFibreChannelMappings')
    return (lpar(o),
            [l.get('href') for l in (sp.findall(U + 'link') if sp is not None else [])],
            [repo(r) for r in (repos.findall(U + 'VirtualMediaRepository')
                               if repos is not None else [])],
            [pv(x) for x in (pvs.findall(U + 'PhysicalVolume') if pvs is not None else [])],
            [(adapter(m.find(U + 'ClientAdapter')), adapter(m.find(U + 'ServerAdapter')))
             for m in (sm.findall(U + 'VirtualSCSIMapping') if sm is not None else [])],
            [adapter(m.find(U + 'ClientAdapter'))
             for m in (fm.findall(U + 'VirtualFibreChannelMapping') if fm is not None else [])],
            [(t(x, U + 'PortName'), t(x, U + 'WWPN'), t(x, U + 'LocationCode'),
              t(x, U + 'UniqueDeviceID'), i(x, U + 'AvailablePorts'), i(x, U + 'TotalPorts'))
             for x in o.iter(U + 'PhysicalFibreChannelPort')])


VIEWS = {'LogicalPartition': lpar, 'ManagedSystem': ms, 'VirtualIOServer': vios,
         'VolumeGroup': vg, 'LogicalUnit': lu}


def parse(data):
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    entries = root.findall(A + 'entry') if root.tag == A + 'feed' else [root]
    out = []
    for e in entries:
        obj = e.find(A + 'content')[0]
        name = obj.tag.split('}')[1]
        out.append((meta(e, obj), VIEWS[name](obj)))
    return out


def main():
    runs = int(sys.argv[1])
    for path in sys.argv[2:]:
        data = open(path, 'rb').read()
        n = len(parse(data))
        # enough parses per run for about 0.2 s
        t0 = time.perf_counter()
        parse(data)
        one = max(time.perf_counter() - t0, 1e-6)
        reps = max(1, int(0.2 / one))
        per = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(reps):
                parse(data)
            per.append((time.perf_counter() - t0) / reps)
        print('%s %d %d %.9f' % (path.rsplit('/', 1)[-1], len(data), n,
                                 statistics.median(per)))


if __name__ == '__main__':
    main()
