/* The VM's device list: devices register themselves by id, in creation
 * order (the order save/load and reset walk them). Kept apart from vm.c so
 * device tests and fuzzers link it without the engines. */
#include <stdio.h>
#include <string.h>
#include "monitor/dev.h"
#include "monitor/vm.h"

void vm_add_dev(struct vm *vm, struct dev *d, const struct dev_type *t, const char *id)
{
	d->type = t;
	d->vm = vm;
	snprintf(d->id, sizeof(d->id), "%s", id);
	/* Append, so save/load and reset walk devices in creation order. */
	struct dev **pp = &vm->devs;
	while (*pp)
		pp = &(*pp)->next;
	d->next = NULL;
	*pp = d;
}

struct dev *vm_find_dev(struct vm *vm, const char *id)
{
	for (struct dev *d = vm->devs; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	return NULL;
}
