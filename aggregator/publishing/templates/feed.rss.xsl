<?xml version="1.0" encoding="UTF-8"?>
<!-- Renders feed.rss readably when opened in a browser (referenced by its xml-stylesheet PI).
     The description is HTML escaped in the feed: disable-output-escaping puts it back as
     HTML (Chromium honours it). It already lists the original title, the translation state
     and the sources with their evidence. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:media="http://search.yahoo.com/mrss/"
    exclude-result-prefixes="atom dc media">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/rss/channel">
    <html lang="{language}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="title"/> (RSS feed)</title>
        <style>
          :root { color-scheme: light dark; }
          body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 16px/1.55 system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; }
          .note { background: #fff6d6; color: #333; border-radius: .4rem; padding: .6rem 1rem; }
          article { border-bottom: 1px solid #8884; padding: .5rem 0 1rem; overflow-wrap: anywhere; }
          h2 { font-size: 1.15rem; margin: .5rem 0 .2rem; }
          .meta, .original-title, .translation-status, small { color: #777; font-size: .9rem; }
          .meta { margin: 0; }
          img { max-width: 100%; height: auto; }
          .thumb { display: block; max-height: 16rem; object-fit: cover; border-radius: .35rem; margin: .5rem 0; }
        </style>
      </head>
      <body>
        <header>
          <h1><a href="{link}"><xsl:value-of select="title"/></a></h1>
          <p><xsl:value-of select="description"/></p>
          <p class="note">This is an RSS feed. Subscribe by copying its address into your feed reader:
            <code><xsl:value-of select="atom:link[@rel='self']/@href"/></code></p>
        </header>
        <main>
          <xsl:apply-templates select="item"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <article data-id="{guid}">
      <h2 class="title">
        <xsl:choose>
          <xsl:when test="link"><a href="{link}"><xsl:value-of select="title"/></a></xsl:when>
          <xsl:otherwise><xsl:value-of select="title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta">
        <xsl:value-of select="dc:creator"/>
        <xsl:text> · </xsl:text>
        <xsl:value-of select="pubDate"/>
        <xsl:for-each select="category">
          <xsl:text> · </xsl:text><span class="category"><xsl:value-of select="."/></span>
        </xsl:for-each>
      </p>
      <xsl:if test="media:thumbnail/@url">
        <img class="thumb" src="{media:thumbnail/@url}" alt="" loading="lazy"/>
      </xsl:if>
      <div class="summary">
        <xsl:value-of select="description" disable-output-escaping="yes"/>
      </div>
    </article>
  </xsl:template>
</xsl:stylesheet>
