/* data_loader.c — Chapter 02: the data loader's shuffle, the one part of the shared loader (common/train_util.h)
 * that the learner writes.
 *
 * Why shuffle every epoch: SGD assumes each batch is a fair random sample of the training set. Files often
 * come sorted (by writer, by class, by date); fixed batches would repeat the same gradient noise every epoch.
 * A new permutation each epoch, drawn from a generator seeded once with --seed, keeps runs reproducible.
 * PyTorch's DataLoader(shuffle=True) does the same (with its own generator, so the orders differ).
 */
#include <stddef.h>

#include "rng.h"
#include "train_util.h"

void data_loader_start_epoch(DataLoader *loader)
{
    /* BEGIN EXERCISE ch02.loader_shuffle: set order[i] = i for every sample, then, if loader->shuffle, shuffle it with rng_shuffle(&loader->rng, ...); reset position and batch_index to 0 (about 8 lines) | zh: 对每个样本置 order[i] = i；若 loader->shuffle 为真，再用 rng_shuffle(&loader->rng, ...) 打乱；把 position 和 batch_index 归零（约 8 行） */
    size_t count = loader->split->count;
    for (size_t i = 0; i < count; i++) {
        loader->order[i] = (uint32_t)i;
    }
    /* The generator is seeded once (data_loader_init) and keeps advancing, so every epoch gets a new
     * permutation while the whole run stays reproducible from the seed. */
    if (loader->shuffle) {
        rng_shuffle(&loader->rng, loader->order, count);
    }
    loader->position = 0;
    loader->batch_index = 0;
    /* END EXERCISE */
}
