"""Training: :func:`~pclup.training.loop.train` and :func:`~pclup.training.finetune.finetune`.

* ``loop``: the training loop, top to bottom;
* ``finetune``: fine-tuning's defaults around it;
* ``pcl``: the PCL half of a step (embedding network, its optimiser, the sampler, the losses);
* ``schedule``: the learning rate of each step;
* ``checkpoint``: writing checkpoints and resuming from one;
* ``folder``: the run folder and its log;
* ``distributed``: several processes (torchrun);
* ``timer``: wall-clock timing;
* ``card``: the model card.
"""
