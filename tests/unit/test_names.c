/* test_names.c: the deterministic names of workers/names.c: PowerVM's length limits, the
 * round trips the scrub relies on, and refusal of malformed UUIDs and image ids. */
#include "names.h"
#include "pvm/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#define UUID "3F1C2A44-9B7E-4C1D-8E2F-0123456789AB"

static void test_limits(void **state)
{
	(void)state;
	char n[PVM_NAME_MAX];
	assert_int_equal(pvm_name_boot_vdisk(UUID, n), 0);
	assert_string_equal(n, "b_3f1c2a449b7e4");
	assert_int_equal(strlen(n), 15);
	assert_int_equal(pvm_name_config_drive(UUID, n), 0);
	assert_string_equal(n, "cfg_3f1c2a449b7e4c1d8e2f012345678.iso");
	assert_int_equal(strlen(n), 37);
	assert_int_equal(pvm_name_boot_lu(UUID, n), 0);
	assert_string_equal(n, "boot_3f1c2a449b7e4c1d8e2f0123456789ab");
	assert_int_equal(pvm_name_partition(UUID, "instance-0000002a", n), 0);
	assert_string_equal(n, "instance-0000002a");
	assert_int_equal(pvm_name_partition(UUID, NULL, n), 0);
	assert_int_equal(strlen(n), 31);
	assert_int_equal(strncmp(n, "nova-3f1c2a44", 13), 0);
	assert_int_equal(pvm_name_partition(UUID, "a-very-long-instance-name-beyond-31-chars", n),
	                 0);
	assert_int_equal(strlen(n), 31);
}

static void test_round_trips(void **state)
{
	(void)state;
	char n[PVM_NAME_MAX], hex[40], id[80], tag[9], tag2[9];
	assert_int_equal(pvm_name_boot_vdisk(UUID, n), 0);
	assert_true(pvm_name_instance_object(n, hex, sizeof(hex)));
	assert_string_equal(hex, "3f1c2a449b7e4");
	assert_int_equal(pvm_name_boot_lu(UUID, n), 0);
	assert_true(pvm_name_instance_object(n, hex, sizeof(hex)));
	assert_string_equal(hex, "3f1c2a449b7e4c1d8e2f0123456789ab");
	assert_int_equal(pvm_name_config_drive(UUID, n), 0);
	assert_true(pvm_name_instance_object(n, hex, sizeof(hex)));
	assert_string_equal(hex, "3f1c2a449b7e4c1d8e2f012345678");
	assert_false(pvm_name_instance_object("rootvg_disk1", hex, sizeof(hex)));
	assert_false(pvm_name_instance_object("b_3F1C2A449B7E4", hex, sizeof(hex)));

	pvm_name_host_tag("c5d782c7-44e4-3086-ad15-b16fb039d63b", tag);
	pvm_name_host_tag("C5D782C7-44E4-3086-AD15-B16FB039D63B", tag2);
	assert_string_equal(tag, tag2);
	assert_int_equal(strlen(tag), 8);
	pvm_name_host_tag("d5d782c7-44e4-3086-ad15-b16fb039d63b", tag2);
	assert_string_not_equal(tag, tag2);
	assert_int_equal(pvm_name_marker_lu(tag, "9a1b2c3d-0000-4000-8000-000000000001", n), 0);
	assert_true(pvm_name_parse_marker(n, id, sizeof(id), tag2));
	assert_string_equal(id, "9a1b2c3d-0000-4000-8000-000000000001");
	assert_string_equal(tag, tag2);
	assert_int_equal(pvm_name_image_lu("9a1b2c3d-0000-4000-8000-000000000001", n), 0);
	assert_false(pvm_name_parse_marker(n, id, sizeof(id), tag2));
}

static void test_refusals(void **state)
{
	(void)state;
	char n[PVM_NAME_MAX];
	assert_int_equal(pvm_name_boot_vdisk("not-a-uuid", n), PVM_EINVAL);
	assert_int_equal(pvm_name_boot_vdisk(UUID "0", n), PVM_EINVAL);
	assert_int_equal(pvm_name_config_drive(NULL, n), PVM_EINVAL);
	assert_false(pvm_name_image_id_ok("../etc/passwd"));
	assert_false(pvm_name_image_id_ok(".hidden"));
	assert_false(pvm_name_image_id_ok(""));
	assert_false(pvm_name_image_id_ok("a/b"));
	assert_true(pvm_name_image_id_ok("cirros-0.6.2"));
	assert_int_equal(pvm_path_image("/s", "a/b", n, sizeof(n)), PVM_EINVAL);
	assert_int_equal(pvm_path_image("/s", "img1", n, sizeof(n)), 0);
	assert_string_equal(n, "/s/images/img1.raw");
	assert_int_equal(pvm_path_config_drive("/s", UUID, n, sizeof(n)), 0);
	assert_string_equal(n, "/s/config-drives/3f1c2a44-9b7e-4c1d-8e2f-0123456789ab.iso");
	assert_int_equal(pvm_path_image("/s", "img1", n, 10), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_round_trips),
	        cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
