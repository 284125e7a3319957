/* names.c: deterministic names (names.h). */
#include "names.h"

#include "pvm/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool pvm_name_image_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 64 || id[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

/* The 32 hex digits of a UUID, lower-case; PVM_EINVAL when it is not 8-4-4-4-12 hex. */
static int uuid_hex(const char *uuid, char hex[33])
{
	static const int groups[] = {8, 4, 4, 4, 12};
	const char *p = uuid;
	size_t k = 0;
	if (!uuid)
		return PVM_EINVAL;
	for (int g = 0; g < 5; g++) {
		for (int i = 0; i < groups[g]; i++, p++) {
			if (!isxdigit((unsigned char)*p))
				return PVM_EINVAL;
			hex[k++] = (char)tolower((unsigned char)*p);
		}
		if (g < 4 && *p++ != '-')
			return PVM_EINVAL;
	}
	if (*p)
		return PVM_EINVAL;
	hex[k] = 0;
	return 0;
}

int pvm_name_partition(const char *instance_uuid, const char *instance_name, char *out)
{
	char hex[33];
	if (uuid_hex(instance_uuid, hex))
		return PVM_EINVAL;
	if (instance_name && instance_name[0])
		snprintf(out, 32, "%s", instance_name);
	else
		snprintf(out, 32, "nova-%.26s", hex);
	/* PowerVM refuses control characters in names: keep it printable */
	for (char *c = out; *c; c++)
		if (!isprint((unsigned char)*c))
			*c = '_';
	return 0;
}

int pvm_name_boot_vdisk(const char *instance_uuid, char *out)
{
	char hex[33];
	if (uuid_hex(instance_uuid, hex))
		return PVM_EINVAL;
	snprintf(out, PVM_NAME_MAX, "b_%.13s", hex);
	return 0;
}

int pvm_name_boot_lu(const char *instance_uuid, char *out)
{
	char hex[33];
	if (uuid_hex(instance_uuid, hex))
		return PVM_EINVAL;
	snprintf(out, PVM_NAME_MAX, "boot_%s", hex);
	return 0;
}

int pvm_name_image_lu(const char *image_id, char *out)
{
	if (!pvm_name_image_id_ok(image_id))
		return PVM_EINVAL;
	snprintf(out, PVM_NAME_MAX, "image_%s", image_id);
	return 0;
}

int pvm_name_marker_lu(const char *host_tag, const char *image_id, char *out)
{
	if (!pvm_name_image_id_ok(image_id) || !host_tag || strlen(host_tag) != 8)
		return PVM_EINVAL;
	snprintf(out, PVM_NAME_MAX, "part%.8simage_%s", host_tag, image_id);
	return 0;
}

int pvm_name_config_drive(const char *instance_uuid, char *out)
{
	char hex[33];
	if (uuid_hex(instance_uuid, hex))
		return PVM_EINVAL;
	snprintf(out, PVM_NAME_MAX, "cfg_%.29s.iso", hex);
	return 0;
}

void pvm_name_host_tag(const char *ms_uuid, char out[9])
{
	uint32_t h = 2166136261u;
	for (const char *p = ms_uuid ? ms_uuid : ""; *p; p++) {
		h ^= (uint32_t)tolower((unsigned char)*p);
		h *= 16777619u;
	}
	snprintf(out, 9, "%08X", (unsigned)h);
}

bool pvm_name_parse_marker(const char *name, char *image_id, size_t in, char host_tag[9])
{
	if (!name || strncmp(name, "part", 4) != 0 || strlen(name) < 4 + 8 + 6 + 1)
		return false;
	for (int i = 0; i < 8; i++)
		if (!isxdigit((unsigned char)name[4 + i]))
			return false;
	if (strncmp(name + 12, "image_", 6) != 0 || !pvm_name_image_id_ok(name + 18))
		return false;
	if (strlen(name + 18) >= in)
		return false;
	memcpy(host_tag, name + 4, 8);
	host_tag[8] = 0;
	snprintf(image_id, in, "%s", name + 18);
	return true;
}

static bool hex_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

bool pvm_name_instance_object(const char *name, char *hex_prefix, size_t n)
{
	size_t len = name ? strlen(name) : 0;
	const char *h = NULL;
	size_t hl = 0;
	if (len == 15 && strncmp(name, "b_", 2) == 0 && hex_run(name + 2, 13)) {
		h = name + 2;
		hl = 13;
	} else if (len == 37 && strncmp(name, "boot_", 5) == 0 && hex_run(name + 5, 32)) {
		h = name + 5;
		hl = 32;
	} else if (len == 37 && strncmp(name, "cfg_", 4) == 0 && hex_run(name + 4, 29) &&
	           strcmp(name + 33, ".iso") == 0) {
		h = name + 4;
		hl = 29;
	}
	if (!h || n <= hl)
		return false;
	memcpy(hex_prefix, h, hl);
	hex_prefix[hl] = 0;
	return true;
}

static int spool_path(const char *state_dir, const char *sub, const char *id, const char *ext,
                      char *out, size_t n)
{
	int w = snprintf(out, n, "%s/%s/%s%s", state_dir, sub, id, ext);
	return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

int pvm_path_image(const char *state_dir, const char *image_id, char *out, size_t n)
{
	if (!state_dir || !pvm_name_image_id_ok(image_id))
		return PVM_EINVAL;
	return spool_path(state_dir, "images", image_id, ".raw", out, n);
}

int pvm_path_config_drive(const char *state_dir, const char *instance_uuid, char *out, size_t n)
{
	char hex[33], canon[37];
	if (!state_dir || uuid_hex(instance_uuid, hex))
		return PVM_EINVAL;
	snprintf(canon, sizeof(canon), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
	return spool_path(state_dir, "config-drives", canon, ".iso", out, n);
}
