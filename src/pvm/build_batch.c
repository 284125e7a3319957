/* build_batch.c: bodies that remove several children of an object in one POST (the
 * start-up scrub: all of a VIOS's orphan mappings in one VIOS update, all of a volume
 * group's orphan disks and media in one group update). Like build.c, the entry as read is
 * parsed with its attributes, edited in the compact tree and written back whole.
 * edit_open/edit_close are build.c's (internal.h). */
#include "internal.h"

#include "pvm/error.h"

#include <stdlib.h>
#include <string.h>

char *pvm_build_vios_remove_scsi_at(const char *entry, size_t len, const size_t *idx, size_t n,
                                    struct pvm_rest_error *err)
{
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VirtualIOServer", &d, &o, err))
		return NULL;
	struct xn *maps = xn_child(o, "VirtualSCSIMappings");
	size_t i = 0, removed = 0;
	struct xn *c = maps ? xn_child(maps, "VirtualSCSIMapping") : NULL;
	while (c) {
		struct xn *next = xn_next(c, "VirtualSCSIMapping");
		for (size_t k = 0; k < n; k++)
			if (idx[k] == i) {
				xn_unlink(c);
				removed++;
				break;
			}
		i++;
		c = next;
	}
	if (removed != n) {
		perr(err, PVM_EINVAL, 0,
		     "VirtualIOServer has %zu mappings; %zu of the %zu to remove are not among "
		     "them",
		     i, n - removed, n);
		xml_free(d);
		return NULL;
	}
	return edit_close(d, o, NS_UOM, err);
}

static bool listed(const char *name, const char *const *names, size_t n)
{
	for (size_t k = 0; name && k < n; k++)
		if (!strcmp(name, names[k]))
			return true;
	return false;
}

char *pvm_build_vg_remove_objects(const char *entry, size_t len, const char *const *vdisks,
                                  size_t nv, const char *const *media, size_t nm, size_t *removed,
                                  struct pvm_rest_error *err)
{
	struct xdoc *d;
	struct xn *o;
	*removed = 0;
	if (edit_open(entry, len, "VolumeGroup", &d, &o, err))
		return NULL;
	struct xn *vds = xn_child(o, "VirtualDisks");
	struct xn *c = vds ? xn_child(vds, "VirtualDisk") : NULL;
	while (c) {
		struct xn *next = xn_next(c, "VirtualDisk");
		if (listed(xn_text(c, "DiskName"), vdisks, nv)) {
			xn_unlink(c);
			(*removed)++;
		}
		c = next;
	}
	struct xn *om = xn_path(o, "MediaRepositories/VirtualMediaRepository/OpticalMedia");
	c = om ? xn_child(om, "VirtualOpticalMedia") : NULL;
	while (c) {
		struct xn *next = xn_next(c, "VirtualOpticalMedia");
		if (listed(xn_text(c, "MediaName"), media, nm)) {
			xn_unlink(c);
			(*removed)++;
		}
		c = next;
	}
	return edit_close(d, o, NS_UOM, err);
}
