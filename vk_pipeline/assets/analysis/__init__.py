"""Content analysis on top of the crawl: tables derived in Postgres, partitioned by group."""

from vk_pipeline.assets.analysis.assets import AnalysisConfig, analysis
from vk_pipeline.assets.analysis.build import ANALYSIS_TABLES
from vk_pipeline.assets.analysis.growth import post_growth

analysis_assets = [analysis, post_growth]

__all__ = ["ANALYSIS_TABLES", "AnalysisConfig", "analysis", "analysis_assets", "post_growth"]
