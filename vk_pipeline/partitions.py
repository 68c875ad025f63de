"""Group partitions, shared by assets, sensors and schedules.

Keys are VK numeric group ids as strings: screen names change, ids do not.
"""

import dagster as dg

GROUP_PARTITIONS_NAME = "vk_groups"

group_partitions = dg.DynamicPartitionsDefinition(name=GROUP_PARTITIONS_NAME)
