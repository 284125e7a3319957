/* test_image.c: the image cache's files (workers/image.c): metadata written atomically and
 * read back, refusal of damaged metadata, and the localdisk look-up spawn relies on. */
#include "image.h"
#include "names.h"
#include "testutil.h"

#include "pvm/error.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void fill(struct pvm_image_meta *m, const char *id, int64_t size)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->image_id, sizeof(m->image_id), "%s", id);
	memset(m->sha256, 'a', 64);
	m->size = size;
	snprintf(m->algo, sizeof(m->algo), "md5");
	memset(m->value, 'b', 32);
	snprintf(m->driver, sizeof(m->driver), "localdisk");
	snprintf(m->state, sizeof(m->state), "ready");
	m->time_ms = 1700000000000LL;
}

static void test_image_meta_round_trip(void **state)
{
	(void)state;
	char *root = pvm_test_tmpdir("image");
	struct pvm_image_meta m, back;
	fill(&m, "img-1", 5);
	m.operation = 42;
	snprintf(m.udid, sizeof(m.udid), "29abc");
	assert_int_equal(pvm_image_meta_write(root, &m), 0);
	assert_int_equal(pvm_image_meta_read(root, "img-1", &back), 0);
	assert_string_equal(back.sha256, m.sha256);
	assert_int_equal(back.size, 5);
	assert_string_equal(back.algo, "md5");
	assert_string_equal(back.value, m.value);
	assert_string_equal(back.state, "ready");
	assert_int_equal(back.operation, 42);
	assert_string_equal(back.udid, "29abc");
	assert_int_equal(back.time_ms, m.time_ms);
	/* nothing but the file itself is left in the directory (no temporary) */
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/images", root);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			assert_string_equal(de->d_name, "img-1.json");
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
	assert_int_equal(pvm_image_meta_read(root, "img-2", &back), PVM_ENOTFOUND);
	assert_int_equal(pvm_image_meta_read(root, "../x", &back), PVM_EINVAL);
	char path[700];
	snprintf(path, sizeof(path), "%s/images/img-3.json", root);
	write_file(path, "{\"sha256\": 12}");
	assert_int_equal(pvm_image_meta_read(root, "img-3", &back), PVM_ECORRUPT);
	write_file(path, "not json");
	assert_int_equal(pvm_image_meta_read(root, "img-3", &back), PVM_ECORRUPT);
	pvm_test_rmtree(root);
}

static void test_image_local_lookup(void **state)
{
	(void)state;
	char *root = pvm_test_tmpdir("image");
	char path[700], raw[700];
	int64_t size = 0;
	assert_int_equal(pvm_image_local_lookup(root, "img-1", path, sizeof(path), &size),
	                 PVM_ENOTFOUND);
	struct pvm_image_meta m;
	fill(&m, "img-1", 5);
	assert_int_equal(pvm_image_meta_write(root, &m), 0);
	/* metadata without the file, then a file of the wrong size: not cached */
	assert_int_equal(pvm_image_local_lookup(root, "img-1", path, sizeof(path), &size),
	                 PVM_ENOTFOUND);
	assert_int_equal(pvm_path_image(root, "img-1", raw, sizeof(raw)), 0);
	write_file(raw, "1234");
	assert_int_equal(pvm_image_local_lookup(root, "img-1", path, sizeof(path), &size),
	                 PVM_ENOTFOUND);
	write_file(raw, "12345");
	assert_int_equal(pvm_image_local_lookup(root, "img-1", path, sizeof(path), &size), 0);
	assert_string_equal(path, raw);
	assert_int_equal(size, 5);
	/* an upload still in progress (or of the other driver) is not cached */
	snprintf(m.state, sizeof(m.state), "uploading");
	assert_int_equal(pvm_image_meta_write(root, &m), 0);
	assert_int_equal(pvm_image_local_lookup(root, "img-1", path, sizeof(path), &size),
	                 PVM_ENOTFOUND);
	assert_int_equal(pvm_image_local_lookup(root, ".bad", path, sizeof(path), &size),
	                 PVM_EINVAL);
	pvm_test_rmtree(root);
}

static void test_image_write_atomic(void **state)
{
	(void)state;
	char *root = pvm_test_tmpdir("image");
	char path[600];
	snprintf(path, sizeof(path), "%s/f.iso", root);
	assert_int_equal(pvm_file_write_atomic(path, "abc", 3), 0);
	assert_int_equal(pvm_file_write_atomic(path, "defg", 4), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/missing/f.iso", root);
	assert_int_equal(pvm_file_write_atomic(path, "abc", 3), -ENOENT);
	pvm_test_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_image_meta_round_trip),
	        cmocka_unit_test(test_image_local_lookup),
	        cmocka_unit_test(test_image_write_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
