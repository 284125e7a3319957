/* names.h: the deterministic names of everything an operation creates on PowerVM, and of
 * the local files the API spools data into. Every name is derived from the instance UUID
 * or the image id alone, so a step can find what an earlier attempt (or a crashed process)
 * created, and the scrub can tell whose an object is.
 *
 * | object | name | limit |
 * |---|---|---|
 * | partition | nova's instance name (`instance-0000002a`), else `nova-` + UUID hex, cut to 31 | 31 |
 * | boot disk, localdisk | `b_` + first 13 hex digits of the instance UUID | 15 |
 * | boot disk, ssp (linked clone) | `boot_` + the 32 hex digits of the instance UUID | 127 |
 * | cached image, ssp | `image_` + the image id | 127 |
 * | upload marker, ssp | `part` + 8 hex digits of this host + `image_` + the image id | 127 |
 * | config drive media | `cfg_` + first 29 hex digits of the instance UUID + `.iso` | 37 |
 * | cached image, localdisk | `<state_dir>/images/<image id>.raw` (a local file) | |
 * | config drive ISO spool | `<state_dir>/config-drives/<instance uuid>.iso` | |
 *
 * Thread-safety: every function is reentrant.
 */
#ifndef PVM_WORKERS_NAMES_H
#define PVM_WORKERS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define PVM_NAME_MAX 160

/* An image id the API accepts: 1 to 64 characters of [A-Za-z0-9._-], not starting with a
 * dot (glance ids are UUIDs). */
bool pvm_name_image_id_ok(const char *image_id);

/* Each returns 0, or PVM_EINVAL for a malformed UUID / image id. out: PVM_NAME_MAX bytes. */
int pvm_name_partition(const char *instance_uuid, const char *instance_name, char *out);
int pvm_name_boot_vdisk(const char *instance_uuid, char *out);
int pvm_name_boot_lu(const char *instance_uuid, char *out);
int pvm_name_image_lu(const char *image_id, char *out);
/* host_tag: 8 hex digits naming this host (pvm_name_host_tag()). */
int pvm_name_marker_lu(const char *host_tag, const char *image_id, char *out);
int pvm_name_config_drive(const char *instance_uuid, char *out);

/* The 8 hex digits of this host in marker names: FNV-1a (32 bits) of the managed system UUID (case-folded),
 * upper-case, so every daemon of one managed system agrees and hosts differ. */
void pvm_name_host_tag(const char *ms_uuid, char out[9]);
/* When name is a marker LU: true, with the image id it marks and its host tag. */
bool pvm_name_parse_marker(const char *name, char *image_id, size_t in, char host_tag[9]);
/* When name is one of ours for an instance (boot disk either driver, config drive media):
 * true, with what identifies the instance in it (a prefix of its UUID's hex digits,
 * lower-case) in hex_prefix (at least 33 bytes). */
bool pvm_name_instance_object(const char *name, char *hex_prefix, size_t n);

/* Local spool files under state_dir. Return 0, PVM_EINVAL for a bad id, -ENAMETOOLONG. */
int pvm_path_image(const char *state_dir, const char *image_id, char *out, size_t n);
int pvm_path_config_drive(const char *state_dir, const char *instance_uuid, char *out, size_t n);

#endif
